"""sem_seg_dice: per-image Dice / IoU equal MONAI's DiceMetric / MeanIoU (ignore_empty=False,
background excluded); empty-vs-empty scores 1; the evaluator averages over images."""
import csv
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from monai.metrics import DiceMetric, MeanIoU

from vertspine.data import register_image_mask_folders, unregister_dataset
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.sem_seg_dice import SemSegDiceEvaluator, dice_iou_per_class


def _monai(pred, gt, num_classes):
    """MONAI Dice and IoU per foreground class of label maps (one image), 1 when both empty."""
    onehot = [F.one_hot(torch.as_tensor(a).long(), num_classes + 1).permute(2, 0, 1)[None]
              for a in (pred, gt)]
    dice = DiceMetric(include_background=False, ignore_empty=False, reduction="none")
    iou = MeanIoU(include_background=False, ignore_empty=False, reduction="none")
    return dice(*onehot)[0].numpy(), iou(*onehot)[0].numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_scores_equal_monai(seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, (20, 24))
    pred = np.where(rng.random((20, 24)) < 0.7, gt, rng.integers(0, 4, (20, 24)))
    gt[gt == 2] = 0  # class 2 absent from the ground truth, present in the prediction: 0
    pred[pred == 3] = 0
    gt[:, :3], pred[:, :3] = 0, 0
    dice, iou = dice_iou_per_class(pred, gt, num_classes=3)  # class 3 absent from both: 1
    expected_dice, expected_iou = _monai(pred, gt, 3)
    np.testing.assert_allclose(dice, expected_dice, rtol=1e-6)
    np.testing.assert_allclose(iou, expected_iou, rtol=1e-6)
    assert dice[1] == 0.0 and iou[1] == 0.0 and dice[2] == 1.0 and iou[2] == 1.0


def test_ignored_pixels_are_left_out():
    rng = np.random.default_rng(3)
    gt, pred = rng.integers(0, 2, (16, 16)), rng.integers(0, 2, (16, 16))
    gt_ignored = gt.copy()
    gt_ignored[:, 8:] = 255
    dice, iou = dice_iou_per_class(pred, gt_ignored, num_classes=1)
    expected = _monai(pred[:, :8], gt[:, :8], 1)
    np.testing.assert_allclose([dice[0], iou[0]], [expected[0][0], expected[1][0]], rtol=1e-6)


@pytest.fixture
def dataset(tmp_path):
    images, masks = str(tmp_path / "images"), str(tmp_path / "masks")
    os.makedirs(images), os.makedirs(masks)
    gts = {"a.png": np.zeros((8, 8), np.uint8), "b.png": np.zeros((8, 8), np.uint8)}
    gts["a.png"][2:6, 2:6] = 255
    for name, mask in gts.items():
        cv2.imwrite(os.path.join(images, name), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(os.path.join(masks, name), mask)
    register_image_mask_folders("dice_eval", images, masks, ["vertebra"], mask_values=[0, 255])
    yield DatasetCatalog.get("dice_eval"), str(tmp_path / "out")
    unregister_dataset("dice_eval")


def _scores(label_map):
    return {"sem_seg": F.one_hot(torch.as_tensor(label_map).long(), 2).permute(2, 0, 1).float()}


def test_evaluator_averages_per_image_scores(dataset):
    records, out = dataset
    cfg = None  # the builder does not read the config
    evaluator = build_evaluator(cfg, "dice_eval", out)
    assert isinstance(evaluator, SemSegDiceEvaluator)
    pred_a = np.zeros((8, 8), np.int64)
    pred_a[2:6, 2:4] = 1  # 8 of 16 vertebra pixels: Dice 2*8/24, IoU 8/16
    pred_b = np.zeros((8, 8), np.int64)  # empty vs empty: 1.0
    evaluator.reset()
    evaluator.process(records, [_scores(pred_a), _scores(pred_b)])
    results = evaluator.evaluate()["sem_seg"]
    assert results["Dice"] == pytest.approx(100 * (2 * 8 / 24 + 1.0) / 2)
    assert results["IoU"] == pytest.approx(100 * (8 / 16 + 1.0) / 2)
    assert results["Dice-vertebra"] == results["Dice"]
    with open(os.path.join(out, "sem_seg_dice_per_image.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file_name", "Dice-vertebra", "IoU-vertebra"]
    assert [float(v) for v in rows[2][1:]] == [1.0, 1.0]  # b.png


def test_dataset_without_stuff_classes_is_rejected():
    MetadataCatalog.get("dice_no_classes").set(evaluator_type="sem_seg_dice")
    with pytest.raises(ValueError, match="stuff_classes"):
        SemSegDiceEvaluator("dice_no_classes")
    MetadataCatalog.pop("dice_no_classes")
