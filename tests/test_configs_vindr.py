"""Every VinDr-SpineXR config (and the new RetinaNet ones) merges, states the recipe it claims,
builds its model, and the Sparse R-CNN leaf repeats Base-VinDr.yaml's data block unchanged."""
import glob
import os

import numpy as np
import pytest

from conftest import REPO_ROOT

import vertspine  # noqa: F401  (first)
from detectron2.modeling import build_model
from vertspine.config import get_vertspine_cfg
from vertspine.data import VertspineDatasetMapper, load_validated_coco_json
from vertspine.data.transforms import AutoAugmentDetection

VINDR = os.path.join(REPO_ROOT, "configs", "vindr_spinexr")
RETINANET = [
    os.path.join(REPO_ROOT, "configs/phantom/retinanet_R_50_FPN_phantom_lesions.yaml"),
    os.path.join(REPO_ROOT, "configs/quick_schedules",
                 "retinanet_R_18_FPN_phantom_lesions_instant_test.yaml"),
]
DATA_KEYS = ["DATASETS.TRAIN", "DATASETS.TEST", "DATALOADER.NUM_WORKERS",
             "DATALOADER.FILTER_EMPTY_ANNOTATIONS", "DATALOADER.SAMPLER_TRAIN",
             "DATALOADER.REPEAT_THRESHOLD", "INPUT.MIN_SIZE_TRAIN",
             "INPUT.MIN_SIZE_TRAIN_SAMPLING",
             "INPUT.MAX_SIZE_TRAIN", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST",
             "INPUT.RANDOM_FLIP", "INPUT.AUTOAUGMENT", "TEST.EVAL_PERIOD",
             "TEST.DETECTIONS_PER_IMAGE", "TEST.BEST_CHECKPOINT_METRIC", "SEED",
             "SOLVER.STEPS", "SOLVER.MAX_ITER", "SOLVER.IMS_PER_BATCH", "SOLVER.CHECKPOINT_PERIOD"]


def load(path, *opts):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


def value(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def test_every_vindr_config_merges_with_vindr_data():
    paths = sorted(glob.glob(os.path.join(VINDR, "*.yaml")))
    assert [os.path.basename(p) for p in paths] == [
        "Base-VinDr.yaml", "faster_rcnn_R_50_FPN_vindr.yaml", "retinanet_R_50_FPN_vindr.yaml",
        "sparse_rcnn_R_50_FPN_100pro_vindr.yaml"]
    for path in paths:
        cfg = load(path)
        assert cfg.DATASETS.TRAIN == ("vindr_spinexr_train",)
        assert cfg.DATASETS.TEST == ("vindr_spinexr_val",)  # never the test split for selection
        assert cfg.INPUT.MAX_SIZE_TRAIN == 2048 and len(cfg.INPUT.MIN_SIZE_TRAIN) == 13
    test = load(os.path.join(VINDR, "faster_rcnn_R_50_FPN_vindr.yaml"),
                "DATASETS.TEST", "('vindr_spinexr_test',)")
    assert test.DATASETS.TEST == ("vindr_spinexr_test",)


def test_sparse_rcnn_leaf_repeats_the_base_data_block():
    base = load(os.path.join(VINDR, "Base-VinDr.yaml"))
    sparse = load(os.path.join(VINDR, "sparse_rcnn_R_50_FPN_100pro_vindr.yaml"))
    for key in DATA_KEYS:
        assert value(sparse, key) == value(base, key), key


def test_class_counts_and_recipes():
    faster = load(os.path.join(VINDR, "faster_rcnn_R_50_FPN_vindr.yaml"))
    assert faster.MODEL.ROI_HEADS.NUM_CLASSES == 7 and faster.SOLVER.OPTIMIZER == "SGD"
    retina = load(os.path.join(VINDR, "retinanet_R_50_FPN_vindr.yaml"))
    assert retina.MODEL.META_ARCHITECTURE == "RetinaNet" and retina.MODEL.RETINANET.NUM_CLASSES == 7
    assert retina.MODEL.BACKBONE.NAME == "build_retinanet_resnet_fpn_backbone"
    np.testing.assert_allclose(retina.MODEL.ANCHOR_GENERATOR.SIZES[2],
                               [128 * 2 ** (k / 3) for k in range(3)], atol=0.01)
    sparse = load(os.path.join(VINDR, "sparse_rcnn_R_50_FPN_100pro_vindr.yaml"))
    node = sparse.MODEL.SPARSE_RCNN
    assert (node.NUM_CLASSES, node.NUM_PROPOSALS, node.NMS_THRESH) == (7, 100, 0.7)
    assert sparse.MODEL.RESNETS.DEPTH == 50 and sparse.MODEL.RESNETS.STRIDE_IN_1X1 is False
    assert sparse.INPUT.FORMAT == "RGB"
    np.testing.assert_allclose(sparse.MODEL.PIXEL_MEAN, [123.675, 116.28, 103.53])
    np.testing.assert_allclose(sparse.MODEL.PIXEL_STD, [58.395, 57.12, 57.375])
    assert sparse.SOLVER.OPTIMIZER == "ADAMW" and sparse.SOLVER.BASE_LR == pytest.approx(2.5e-5)
    clip = sparse.SOLVER.CLIP_GRADIENTS
    assert clip.ENABLED and clip.CLIP_TYPE == "full_model" and clip.CLIP_VALUE == 1.0


@pytest.mark.parametrize("name", ["faster_rcnn_R_50_FPN_vindr.yaml",
                                  "retinanet_R_50_FPN_vindr.yaml",
                                  "sparse_rcnn_R_50_FPN_100pro_vindr.yaml"])
def test_vindr_models_build_with_seven_class_outputs(name):
    cfg = load(os.path.join(VINDR, name), "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "")
    model = build_model(cfg)
    outputs = {
        "faster": lambda m: m.roi_heads.box_predictor.cls_score.out_features,  # 7 + background
        "retinanet": lambda m: m.head.cls_score.out_channels // 9,  # 9 anchors per location
        "sparse": lambda m: m.head.head_series[0].class_logits.out_features,
    }[name.split("_")[0]](model)
    assert outputs == (8 if name.startswith("faster") else 7)


@pytest.mark.parametrize("path", RETINANET)
def test_phantom_retinanet_configs(path):
    cfg = load(path)
    assert cfg.MODEL.META_ARCHITECTURE == "RetinaNet" and cfg.MODEL.RETINANET.NUM_CLASSES == 7
    assert cfg.MODEL.DEVICE == "cpu" and cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS is False
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES[0][0] == 16


def test_vindr_training_mapper_runs_autoaugment_on_a_radiograph(tiny_phantom):
    cfg = load(os.path.join(VINDR, "sparse_rcnn_R_50_FPN_100pro_vindr.yaml"))
    mapper = VertspineDatasetMapper(cfg, is_train=True)
    assert isinstance(mapper.augmentations.augs[-1], AutoAugmentDetection)
    root = tiny_phantom["root"]
    records = load_validated_coco_json(os.path.join(root, "annotations", "lesions_train.json"),
                                       os.path.join(root, "images", "train"), "tiny_cfg_check")
    np.random.seed(0)
    for record in records:
        mapped = mapper(record)
        height, width = mapped["image"].shape[1:]
        assert 640 <= min(height, width) <= 1024 and max(height, width) <= 2048
        boxes = mapped["instances"].gt_boxes.tensor.numpy()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= [width, height]).all()
