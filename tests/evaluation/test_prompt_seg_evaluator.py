"""The prompt_seg evaluator: box masks merged by predicted IoU, ground truth read from the npz
(a 2D image, or one slice of a volume with its in-plane spacing), results per modality, CSV
files and overlays; bad inputs named."""
import csv
import os
from math import sqrt

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog

from vertspine.config import get_vertspine_cfg
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.prompt_seg import PromptSegEvaluator


@pytest.fixture
def cases(tmp_path):
    """A 2D image with two objects and a 3D volume with one; its (z, y, x) spacing
    (3, 0.5, 0.5) mm is stored as the challenge's (x, y, z)."""
    gts = np.zeros((20, 20), np.uint16)
    gts[2:8, 2:8], gts[10:18, 10:18] = 1, 300
    imgs = np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    np.savez(tmp_path / "2DBox_XRay_a.npz", imgs=imgs, gts=gts)
    volume = np.zeros((5, 20, 20), np.uint8)
    volume[1:4, 5:15, 5:15] = 2
    np.savez(tmp_path / "3DBox_CT_b.npz", imgs=np.zeros((5, 20, 20), np.int16), gts=volume,
             spacing=np.array([0.5, 0.5, 3.0]))
    return tmp_path, gts, volume


def _output(masks, ious):
    return {"prompt_seg": {"masks": torch.as_tensor(np.asarray(masks)),
                           "iou_predictions": torch.tensor(ious, dtype=torch.float32)}}


def _image_input(folder):
    return {"file_name": str(folder / "2DBox_XRay_a.npz"), "image_id": "a", "modality": "XRay",
            "gt_labels": torch.tensor([1, 300])}


def test_merged_masks_scored_per_modality_with_csv_and_overlays(cases):
    folder, gts, volume = cases
    MetadataCatalog.get("promptseg_eval_test").set(evaluator_type="prompt_seg")
    cfg = get_vertspine_cfg()
    cfg.TEST.PROMPT_SEG.NUM_OVERLAYS = 1
    evaluator = build_evaluator(cfg, "promptseg_eval_test", str(folder / "out"))
    assert isinstance(evaluator, PromptSegEvaluator)
    # 2D: box 1's mask spills over object 300 with a lower IoU, so 300 keeps its pixels
    masks = np.stack([gts == 1, gts == 300])
    masks[0, 2:18, 2:18] = True
    # 3D slice 2: the prediction is the object shifted by 4 px (2 mm, within tau) in x
    shifted = np.roll(volume[2] == 2, 4, axis=1)[None]
    evaluator.reset()
    evaluator.process([_image_input(folder)], [_output(masks, [0.5, 0.9])])
    evaluator.process([{"file_name": str(folder / "3DBox_CT_b.npz"), "image_id": "b_2",
                        "modality": "CT", "gt_labels": torch.tensor([2]), "slice_index": 2}],
                      [_output(shifted, [0.8])])
    results = evaluator.evaluate()["prompt_seg"]
    # 2D: label 1 predicted on 16*16 - 64 = 192 px, 36 right: 72/(36+192); label 300 perfect
    dsc_2d = (72 / 228 + 1.0) / 2
    assert results["DSC-XRay"] == pytest.approx(100 * dsc_2d)
    assert results["DSC-CT"] == pytest.approx(100 * 2 * 60 / 200)  # 10 x 6 of 10 x 10 overlap
    assert results["NSD-CT"] == pytest.approx(100.0)  # every contour point within 2 mm
    assert results["DSC"] == pytest.approx((results["DSC-XRay"] + results["DSC-CT"]) / 2)
    with open(folder / "out" / "prompt_seg_per_case.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["case"], r["slice_index"], r["modality"], r["labels"]) for r in rows] == [
        ("2DBox_XRay_a.npz", "", "XRay", "2"), ("3DBox_CT_b.npz", "2", "CT", "1")]
    with open(folder / "out" / "prompt_seg_per_label.csv") as f:
        labels = [(r["label"], float(r["DSC"])) for r in csv.DictReader(f)]
    assert labels == [("1", pytest.approx(100 * 72 / 228, abs=1e-4)), ("300", 100.0),
                      ("2", 60.0)]
    overlay = cv2.imread(str(folder / "out" / "prompt_seg_overlays" / "2DBox_XRay_a.png"))
    assert overlay.shape == (20, 20, 3)
    assert tuple(overlay[7, 5]) == (0, 255, 0)  # ground-truth contour of label 1 (green)
    assert tuple(overlay[2, 12]) == (0, 0, 255)  # the prediction's contour (red)
    assert os.listdir(folder / "out" / "prompt_seg_overlays") == ["2DBox_XRay_a.png"]  # only 1
    MetadataCatalog.pop("promptseg_eval_test")


def test_slice_nsd_uses_the_in_plane_spacing(cases):
    """A 5-px shift at 0.5 mm/px is 2.5 mm, beyond tau = 2 mm (4 px). By hand, as the square of
    the metrics' tests: of each 10 x 10 px contour, the trailing side (9 straight points and
    2 corners, 5 px away) and the leading side's middle point (5 px) fail. The input's spacing
    (the mapper's) wins over the file's: at 0.25 mm/px everything is within. A 2D image beside
    them takes the 2D tolerance (50 px here: everything within)."""
    folder, gts, volume = cases
    evaluator = PromptSegEvaluator("x", tolerance_2d=50.0, tolerance_3d=2.0, distributed=False)
    shifted = np.roll(volume[1] == 2, 5, axis=1)
    record = {"file_name": str(folder / "3DBox_CT_b.npz"), "slice_index": 1,
              "gt_labels": torch.tensor([2])}
    evaluator.process([record, dict(record, spacing=(3.0, 0.25, 0.25), modality="CT")],
                      [_output(shifted[None], [0.5])] * 2)
    evaluator.process([_image_input(folder)],
                      [_output(np.stack([np.roll(gts == 1, 4, axis=0), gts == 300]), [.5, .5])])
    results = evaluator.evaluate()["prompt_seg"]
    assert results["NSD-unknown"] == pytest.approx(100 * (26 + sqrt(2)) / (36 + 2 * sqrt(2)),
                                                   abs=1e-4)
    assert results["DSC-unknown"] == pytest.approx(50.0) and results["NSD-CT"] == 100.0
    assert results["NSD-XRay"] == 100.0 and results["DSC-XRay"] < 100.0


def test_labels_without_a_box_score_zero_and_are_noted(cases):
    folder, gts, _ = cases
    evaluator = PromptSegEvaluator("x", distributed=False, output_dir=str(folder / "o"))
    record = dict(_image_input(folder), gt_labels=torch.tensor([1]))
    evaluator.process([record], [_output((gts == 1)[None], [0.9])])
    assert evaluator.evaluate()["prompt_seg"]["DSC"] == pytest.approx(50.0)  # 300: missed
    with open(folder / "o" / "prompt_seg_per_case.csv") as f:
        assert next(csv.DictReader(f))["note"] == "labels without a box: [300]"


def test_bad_inputs_are_named(cases):
    folder, gts, volume = cases
    evaluator = PromptSegEvaluator("x", distributed=False)
    volume_input = {"file_name": str(folder / "3DBox_CT_b.npz"), "gt_labels": torch.tensor([2])}
    frame = r"\(1, 20, 20\) are not in the frame.*\(5, 20, 20\).*slice_index"
    with pytest.raises(ValueError, match=frame):
        evaluator.process([volume_input], [_output(np.zeros((1, 20, 20), bool), [0.5])])
    with pytest.raises(ValueError, match="slice_index 5 is outside the volume"):
        evaluator.process([dict(volume_input, slice_index=5)],
                          [_output(np.zeros((1, 20, 20), bool), [0.5])])
    with pytest.raises(ValueError, match=r"masks \(2, 10, 10\) are not in the frame"):
        evaluator.process([_image_input(folder)], [_output(np.zeros((2, 10, 10), bool), [.5, .5])])
    with pytest.raises(KeyError, match="PromptSegMapper"):
        evaluator.process([{"file_name": "a.npz"}], [_output(np.zeros((1, 2, 2), bool), [0.5])])
    np.savez(folder / "3DBox_MR_c.npz", gts=volume)
    with pytest.raises(ValueError, match="3DBox_MR_c.npz': a 3D 'gts'.*needs 'spacing'"):
        evaluator.process([dict(volume_input, file_name=str(folder / "3DBox_MR_c.npz"),
                                slice_index=0)], [_output(np.zeros((1, 20, 20), bool), [0.5])])
    with pytest.raises(ValueError, match="PLANAR_NSD"):
        PromptSegEvaluator("x", planar_nsd="area")


def test_rows_of_every_process_are_gathered(cases, monkeypatch):
    from detectron2.utils import comm

    folder, gts, _ = cases
    other = PromptSegEvaluator("x", distributed=False)
    other.process([_image_input(folder)], [_output(np.zeros((2, 20, 20), bool), [0.5, 0.5])])
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda rows, dst=0: [rows, other._rows])
    evaluator = PromptSegEvaluator("x", distributed=True)
    evaluator.process([_image_input(folder)], [_output(np.stack([gts == 1, gts == 300]), [.5, .5])])
    assert evaluator.evaluate()["prompt_seg"]["DSC-XRay"] == pytest.approx(50.0)  # 100 and 0


def test_whole_volume_scored_in_3d_with_the_file_spacing(cases):
    """Masks [B, D, H, W] of a volume (no slice_index): 3D DSC/NSD with the (z, y, x) spacing;
    shifted by 4 px = 2 mm in x, every surface element is within tau = 2 mm."""
    folder, _, volume = cases
    evaluator = PromptSegEvaluator("x", distributed=False, num_overlays=1,
                                   output_dir=str(folder / "v"))
    masks = np.roll(volume == 2, 4, axis=2)[None]
    evaluator.process([{"file_name": str(folder / "3DBox_CT_b.npz"), "modality": "CT",
                        "gt_labels": torch.tensor([2])}], [_output(masks, [0.5])])
    results = evaluator.evaluate()["prompt_seg"]
    assert results["DSC-CT"] == pytest.approx(60.0) and results["NSD-CT"] == 100.0
    assert os.listdir(folder / "v" / "prompt_seg_overlays") == ["3DBox_CT_b_z0001.png"]
