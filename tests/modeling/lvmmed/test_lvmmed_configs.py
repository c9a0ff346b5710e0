"""configs/lvmmed: every YAML merges; detection, classification and segmentation configs train
2 iterations (tiny sizes) from a torchvision ResNet-50 state dict and evaluate."""
import glob
import json
import os
from functools import partial

import pytest
import torch
import torchvision
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from segment_anything.modeling.image_encoder import ImageEncoderViT

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.data import (
    register_classification_view,
    register_datasets_from_config,
    register_image_mask_folders,
    unregister_dataset,
)
from vertspine.data.builtin_classification import ABNORMAL_CLASS_NAMES, label_any_annotation
from vertspine.data.phantom_spine_seg import write_vertebra_masks
from vertspine.engine import Trainer

CONFIGS = os.path.join(REPO_ROOT, "configs", "lvmmed")
TINY_VIT = ["MODEL.LVMMED.VIT.IMG_SIZE", "64", "MODEL.LVMMED.VIT.EMBED_DIM", "32",
            "MODEL.LVMMED.VIT.DEPTH", "2", "MODEL.LVMMED.VIT.NUM_HEADS", "2",
            "MODEL.LVMMED.VIT.WINDOW_SIZE", "2", "MODEL.LVMMED.VIT.GLOBAL_ATTN_INDEXES", "[1]"]
QUICK = ["SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
         "TEST.EVAL_PERIOD", "0", "TEST.VAL_LOSS_PERIOD", "0", "TEST.BEST_CHECKPOINT_METRIC", "",
         "SOLVER.CHECKPOINT_PERIOD", "1000", "VERTSPINE.LOG_PERIOD", "1"]


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp("lvmmed_cfg") / "resnet50_torchvision.torch")
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_vit_file(tmp_path_factory):
    encoder = ImageEncoderViT(img_size=64, embed_dim=32, depth=2, num_heads=2, use_abs_pos=False,
                              use_rel_pos=True, window_size=2, global_attn_indexes=(1,),
                              norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
    path = str(tmp_path_factory.mktemp("lvmmed_vit_cfg") / "vit_sam_layout.pth")
    torch.save(encoder.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_views(tiny_phantom):
    """tiny_abnormal_{train,val} and tiny_spine_seg_{train,val} on the 8 + 4 tiny radiographs."""
    root, names = tiny_phantom["root"], []
    for split in ("train", "val"):
        register_classification_view(f"tiny_abnormal_{split}", f"tiny_lesions_{split}",
                                     label_any_annotation, ABNORMAL_CLASS_NAMES, split=split)
        mask_dir = os.path.join(root, "masks", f"vertebra_{split}")
        write_vertebra_masks(os.path.join(root, "annotations", f"vertebrae_{split}.json"),
                             mask_dir, mask_dir + "_manifest.json")
        register_image_mask_folders(f"tiny_spine_seg_{split}", os.path.join(root, "images", split),
                                    mask_dir, ["vertebra"], mask_values=[0, 255])
        names += [f"tiny_abnormal_{split}", f"tiny_spine_seg_{split}"]
    yield {"classification": [*tiny_phantom["opts"][:2],
                              "DATASETS.TRAIN", "('tiny_abnormal_train',)",
                              "DATASETS.TEST", "('tiny_abnormal_train',)"],
           "segmentation": ["DATASETS.TRAIN", "('tiny_spine_seg_train',)",
                            "DATASETS.TEST", "('tiny_spine_seg_val',)"]}
    for name in names:
        unregister_dataset(name)


def _cfg(name, opts):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    cfg.merge_from_list(opts)
    return cfg


def _train(name, opts, output_dir):
    """Train in this process as train_net.py does; returns (trainer, evaluation results)."""
    cfg = _cfg(name, [*opts, *QUICK, "OUTPUT_DIR", str(output_dir)])
    cfg.freeze()
    register_datasets_from_config(cfg)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(str(output_dir), "inference", "evaluation_results.json")) as f:
        return trainer, json.load(f)["results"]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))),
                         ids=os.path.basename)
def test_every_config_merges(path):
    cfg = _cfg(os.path.basename(path), [])
    weights = (cfg.MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS  # the U-Net: the segmentation family
               if cfg.MODEL.META_ARCHITECTURE == "Segmentor" else cfg.MODEL.LVMMED.ENCODER_WEIGHTS)
    assert weights.startswith("weights/lvmmed/")
    assert cfg.MODEL.PIXEL_MEAN == [123.675, 116.28, 103.53] and cfg.INPUT.FORMAT == "RGB"
    if not os.path.basename(path).startswith("Base-"):  # phantom leaves run on a CPU
        assert cfg.MODEL.DEVICE == "cpu"


DETECTION_TINY = ["INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "128",
                  "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128",
                  "MODEL.FPN.OUT_CHANNELS", "32"]


@pytest.mark.parametrize("name, extra", [
    ("faster_rcnn_lvmmed_R_50_FPN_phantom_lesions.yaml",
     ["MODEL.RPN.POST_NMS_TOPK_TRAIN", "50", "MODEL.RPN.POST_NMS_TOPK_TEST", "20",
      "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64"]),
    ("sparse_rcnn_lvmmed_R_50_FPN_phantom_lesions.yaml",
     ["MODEL.SPARSE_RCNN.NUM_PROPOSALS", "10", "MODEL.SPARSE_RCNN.NUM_HEADS", "1",
      "MODEL.SPARSE_RCNN.HIDDEN_DIM", "32", "MODEL.SPARSE_RCNN.DIM_FEEDFORWARD", "64",
      "MODEL.SPARSE_RCNN.NHEADS", "4", "MODEL.SPARSE_RCNN.DIM_DYNAMIC", "8"]),
], ids=["faster_rcnn", "sparse_rcnn"])
def test_detection_two_iterations(name, extra, resnet50_file, tiny_phantom, tmp_path):
    trainer, results = _train(name, [*tiny_phantom["opts"], *DETECTION_TINY, *extra,
                                     "MODEL.LVMMED.ENCODER_WEIGHTS", resnet50_file], tmp_path)
    bottom_up = trainer.model.backbone.bottom_up
    assert bottom_up.lvmmed_report.complete and len(bottom_up.lvmmed_report.loaded) == 265
    source = torch.load(resnet50_file, weights_only=True)
    # FREEZE_AT 2: stem and res2 keep the checkpoint's values; res3 was trained
    torch.testing.assert_close(bottom_up.res2[0].conv1.weight, source["layer1.0.conv1.weight"])
    assert not torch.equal(bottom_up.res3[0].conv1.weight, source["layer2.0.conv1.weight"])
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}
    assert os.path.isfile(os.path.join(str(tmp_path), "model_final.pth"))


def test_linear_probe_two_iterations(resnet50_file, tiny_views, tmp_path):
    trainer, results = _train("probe_1fc_lvmmed_R_50_phantom_abnormal.yaml", [
        *tiny_views["classification"],
        "MODEL.LVMMED.ENCODER_WEIGHTS", resnet50_file, "INPUT.MIN_SIZE_TRAIN", "(32,)",
        "INPUT.MIN_SIZE_TEST", "32", "TEST.CLASSIFICATION.BOOTSTRAP", "0"], tmp_path)
    source = torch.load(resnet50_file, weights_only=True)
    backbone = trainer.model.backbone
    torch.testing.assert_close(backbone.res5[2].conv3.weight, source["layer4.2.conv3.weight"])
    torch.testing.assert_close(backbone.res4[0].conv1.norm.running_mean,
                               source["layer3.0.bn1.running_mean"])  # BN statistics frozen too
    # evaluated on the 8 training radiographs: the 4 validation ones are all abnormal (no AUROC)
    labels = [r["label"] for r in DatasetCatalog.get("tiny_abnormal_train")]
    assert results["classification"]["num_positive"] == sum(labels) == 3
    assert 0.0 <= results["classification"]["AUROC"] <= 100.0


def test_unet_two_iterations(resnet50_file, tiny_views, tmp_path):
    trainer, results = _train("unet_lvmmed_R_50_phantom_spine_seg.yaml", [
        *tiny_views["segmentation"],
        "MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS", resnet50_file, "INPUT.MIN_SIZE_TEST", "64"],
        tmp_path)
    report = trainer.model.unet.encoder_report
    assert report.complete and len(report.loaded) == 318  # 265 tensors + 53 BN counters
    sem_seg = results["sem_seg"]
    assert set(sem_seg) == {"Dice", "IoU", "Dice-vertebra", "IoU-vertebra"}
    assert 0.0 <= sem_seg["IoU"] <= sem_seg["Dice"] <= 100.0


@pytest.mark.parametrize("name", ["finetune_fcns_lvmmed_ViT_B_phantom_abnormal.yaml",
                                  "semfpn_lvmmed_ViT_B_phantom_spine_seg.yaml"])
def test_vit_configs_build_and_step(name, tiny_vit_file):
    cfg = _cfg(name, [*TINY_VIT, "MODEL.LVMMED.ENCODER_WEIGHTS", tiny_vit_file,
                      "MODEL.DEVICE", "cpu"])
    model = build_model(cfg)
    vit = getattr(model.backbone, "net", model.backbone)
    assert vit.lvmmed_report.complete and len(vit.lvmmed_report.dropped) == 6  # neck unused
    image = torch.randint(0, 256, (3, 64, 80)).float()
    inputs = [{"image": image, "label": 1, "sem_seg": torch.randint(0, 2, (64, 80))}]
    losses = model.train()(inputs)
    assert all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        output = model.eval()(inputs)[0]
    if "sem_seg" in output:
        assert list(output["sem_seg"].shape) == [2, 64, 80]
    else:
        assert output["probs"].shape == (1,) and 0.0 < float(output["probs"]) < 1.0
