"""scripts/compare_lvmmed_backbones.py: demo checkpoints in the official layouts load strictly,
and a 1-iteration comparison writes one table (markdown + csv) with a row per run."""
import csv
import os

import pytest
import torch
from detectron2.modeling import build_backbone

from conftest import load_script
from vertspine.config import get_vertspine_cfg
from vertspine.data import (
    register_classification_view,
    register_image_mask_folders,
    unregister_dataset,
)
from vertspine.data.builtin_classification import ABNORMAL_CLASS_NAMES, label_any_annotation
from vertspine.data.phantom_spine_seg import write_vertebra_masks

TINY_VIT = ["MODEL.LVMMED.VIT.IMG_SIZE", "64", "MODEL.LVMMED.VIT.EMBED_DIM", "32",
            "MODEL.LVMMED.VIT.DEPTH", "2", "MODEL.LVMMED.VIT.NUM_HEADS", "2",
            "MODEL.LVMMED.VIT.WINDOW_SIZE", "2", "MODEL.LVMMED.VIT.GLOBAL_ATTN_INDEXES", "[1]",
            "MODEL.LVMMED.PYRAMID.OUT_CHANNELS", "32", "MODEL.SEM_SEG_HEAD.CONVS_DIM", "32"]


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/compare_lvmmed_backbones.py", "compare_lvmmed_backbones")


def test_demo_resnet_checkpoint_has_the_torchvision_layout(script, tmp_path):
    paths = script.make_demo_checkpoints(str(tmp_path), ["resnet"], "", [])
    state = torch.load(paths["resnet"], weights_only=True)
    assert "fc.weight" in state and "layer4.2.bn3.running_var" in state and len(state) == 320
    cfg = get_vertspine_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_lvmmed_resnet_backbone"
    cfg.MODEL.RESNETS.DEPTH, cfg.MODEL.RESNETS.STRIDE_IN_1X1 = 50, False
    cfg.MODEL.LVMMED.ENCODER_WEIGHTS = paths["resnet"]
    assert build_backbone(cfg).lvmmed_report.complete  # strict by default
    assert "NOT LVM-Med weights" in (tmp_path / "README.txt").read_text()


@pytest.fixture
def tiny_data(tiny_phantom):
    """cmp_abnormal_train (8 radiographs, 3 abnormal) and cmp_spine_seg_{train,val}."""
    root = tiny_phantom["root"]
    register_classification_view("cmp_abnormal_train", "tiny_lesions_train", label_any_annotation,
                                 ABNORMAL_CLASS_NAMES, split="train")
    for split in ("train", "val"):
        mask_dir = os.path.join(root, "masks", f"vertebra_{split}")
        write_vertebra_masks(os.path.join(root, "annotations", f"vertebrae_{split}.json"),
                             mask_dir, mask_dir + "_manifest.json")
        register_image_mask_folders(f"cmp_spine_seg_{split}", os.path.join(root, "images", split),
                                    mask_dir, ["vertebra"], mask_values=[0, 255])
    yield tiny_phantom["opts"][:2]  # DATASETS.COCO_JSON registering tiny_lesions_*
    for name in ("cmp_abnormal_train", "cmp_spine_seg_train", "cmp_spine_seg_val"):
        unregister_dataset(name)


def test_one_iteration_comparison_table(script, tiny_data, tmp_path):
    out = str(tmp_path / "compare")
    rows = script.main([
        "--make-demo-checkpoints", str(tmp_path / "demo"), "--output", out,
        "--backbones", "vit", "--tasks", "probe,segmentation", "--iters", "1",
        "--classification-datasets", "cmp_abnormal_train", "cmp_abnormal_train",
        "--segmentation-datasets", "cmp_spine_seg_train", "cmp_spine_seg_val",
        "--opts", *tiny_data, "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MIN_SIZE_TEST", "64",
        "SOLVER.IMS_PER_BATCH", "2", "TEST.CLASSIFICATION.BOOTSTRAP", "0",
        "--vit-opts", *TINY_VIT])
    assert [(r["init"], r["task"]) for r in rows] == [
        ("random", "probe"), ("random", "segmentation"),
        ("checkpoint (DEMO random weights)", "probe"),
        ("checkpoint (DEMO random weights)", "segmentation")]
    with open(os.path.join(out, "comparison.csv")) as f:
        table = list(csv.DictReader(f))
    assert [r["task"] for r in table] == ["probe", "segmentation"] * 2
    assert table[0]["keys_loaded"] == "0"
    # tiny encoder: patch embed 2 + 2 blocks x 14 tensors; the 6 neck tensors are dropped (unused)
    assert table[2]["keys_loaded"] == table[3]["keys_loaded"] == "30"
    assert table[2]["layout"] == "sam_vit_b" and table[2]["checkpoint"].endswith(
        "DEMO_RANDOM_vit_sam_encoder_layout.pth")
    for row in table:
        metrics = ("AUROC", "accuracy") if row["task"] == "probe" else ("Dice", "IoU")
        assert all(0.0 <= float(row[m]) <= 100.0 for m in metrics), row
    markdown = open(os.path.join(out, "comparison.md")).read()
    assert "RANDOM weights" in markdown and markdown.count("| ViT-B |") == 4
    assert os.path.isfile(os.path.join(out, "vit_checkpoint_segmentation", "config.yaml"))
