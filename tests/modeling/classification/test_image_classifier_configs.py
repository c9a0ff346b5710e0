"""Every classification YAML merges, names a timm network, states ImageNet normalisation,
and never evaluates (selects models or thresholds) on a test split during training."""
import glob
import os

import pytest
import timm
from detectron2.modeling import build_model

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.data import dataset_split

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs/classification/*.yaml"))) + [
    os.path.join(REPO_ROOT, "configs/quick_schedules/image_classifier_instant_test.yaml")]
IMAGENET = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])


def _load(path):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(path)
    return cfg


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_merges_and_is_consistent(path):
    cfg = _load(path)
    assert cfg.MODEL.META_ARCHITECTURE == "ImageClassifier"
    assert cfg.INPUT.DATASET_MAPPER == "ImageLabelDatasetMapper"
    assert timm.is_model(cfg.MODEL.TIMM.NAME) and not cfg.MODEL.TIMM.PRETRAINED
    assert (list(cfg.MODEL.PIXEL_MEAN), list(cfg.MODEL.PIXEL_STD)) == IMAGENET
    assert cfg.INPUT.FORMAT == "RGB"
    assert all(dataset_split(name) != "test" for name in cfg.DATASETS.TEST)


def test_vindr_leaves_cover_the_upstream_networks():
    names = {os.path.basename(p): _load(p).MODEL.TIMM.NAME for p in CONFIGS if "vindr" in p}
    assert names == {"densenet121_vindr_abnormal.yaml": "densenet121",
                     "densenet169_vindr_abnormal.yaml": "densenet169",
                     "densenet201_vindr_abnormal.yaml": "densenet201",
                     "resnet50_vindr_abnormal.yaml": "resnet50"}
    cfg = _load(os.path.join(REPO_ROOT, "configs/classification/densenet121_vindr_abnormal.yaml"))
    assert cfg.DATASETS.TRAIN == ("vindr_spinexr_cls_train",)
    assert cfg.TEST.BEST_CHECKPOINT_METRIC == "classification/AUROC"


def test_linear_probe_config_freezes_the_backbone():
    cfg = _load(os.path.join(REPO_ROOT,
                             "configs/classification/resnet18_phantom_abnormal_linear_probe.yaml"))
    cfg.MODEL.TIMM.NAME = "test_resnet"  # same settings, a smaller network to build
    model = build_model(cfg)
    assert model.freeze_backbone and not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
