"""sem_seg_dice: per-image Dice / IoU equal MONAI's DiceMetric / MeanIoU (ignore_empty=False,
background excluded) in 2D and 3D; empty-vs-empty scores 1; the evaluator takes the ground truth
from the inputs (what the mapper gives), never from files, and averages over images."""
import csv
import os

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from monai.metrics import DiceMetric, MeanIoU

from vertspine.config import get_vertspine_cfg
from vertspine.data import SemSegDatasetMapper, register_image_mask_folders, unregister_dataset
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.sem_seg_dice import SemSegDiceEvaluator, dice_iou_per_class


def _onehot(label_map, num_labels):
    """[*spatial] labels -> [1, num_labels, *spatial] one-hot (MONAI's layout)."""
    return F.one_hot(torch.as_tensor(label_map).long(), num_labels).movedim(-1, 0)[None]


def _monai(pred, gt, num_classes):
    """MONAI Dice and IoU per foreground class of label maps (one image), 1 when both empty."""
    onehot = [_onehot(a, num_classes + 1) for a in (pred, gt)]
    dice = DiceMetric(include_background=False, ignore_empty=False, reduction="none")
    iou = MeanIoU(include_background=False, ignore_empty=False, reduction="none")
    return dice(*onehot)[0].numpy(), iou(*onehot)[0].numpy()


@pytest.mark.parametrize("shape", [(20, 24), (10, 12, 8)], ids=["2d", "3d"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_scores_equal_monai(shape, seed):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, shape)
    pred = np.where(rng.random(shape) < 0.7, gt, rng.integers(0, 4, shape))
    gt[gt == 2] = 0  # class 2 absent from the ground truth, present in the prediction: 0
    pred[pred == 3] = 0
    gt[:, :3], pred[:, :3] = 0, 0
    dice, iou = dice_iou_per_class(pred, gt, num_classes=3)  # class 3 absent from both: 1
    expected_dice, expected_iou = _monai(pred, gt, 3)
    np.testing.assert_allclose(dice, expected_dice, rtol=1e-6)
    np.testing.assert_allclose(iou, expected_iou, rtol=1e-6)
    assert dice[1] == 0.0 and iou[1] == 0.0 and dice[2] == 1.0 and iou[2] == 1.0


@pytest.mark.parametrize("shape", [(16, 16), (8, 16, 6)], ids=["2d", "3d"])
def test_ignored_elements_are_left_out(shape):
    rng = np.random.default_rng(3)
    gt, pred = rng.integers(0, 2, shape), rng.integers(0, 2, shape)
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
    return {"sem_seg": _onehot(label_map, 2)[0].float()}


def test_evaluator_takes_the_mapper_ground_truth_and_averages_per_image(dataset):
    records, out = dataset
    cfg = get_vertspine_cfg()
    cfg.INPUT.FORMAT, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = "RGB", 16, 32
    inputs = [SemSegDatasetMapper(cfg, is_train=False)(record) for record in records]
    assert inputs[0]["image"].shape[1:] == (16, 16)  # the model sees the resized image ...
    assert inputs[0]["sem_seg"].shape == (8, 8)  # ... the evaluator the mask as on disk
    for record in inputs:
        os.remove(record["sem_seg_file_name"])  # nothing is re-read from disk
    evaluator = build_evaluator(cfg, "dice_eval", out)
    assert isinstance(evaluator, SemSegDiceEvaluator)
    pred_a = np.zeros((8, 8), np.int64)
    pred_a[2:6, 2:4] = 1  # 8 of 16 vertebra pixels: Dice 2*8/24, IoU 8/16
    pred_b = np.zeros((8, 8), np.int64)  # empty vs empty: 1.0
    evaluator.reset()
    evaluator.process(inputs, [_scores(pred_a), _scores(pred_b)])
    results = evaluator.evaluate()["sem_seg"]
    assert results["Dice"] == pytest.approx(100 * (2 * 8 / 24 + 1.0) / 2)
    assert results["IoU"] == pytest.approx(100 * (8 / 16 + 1.0) / 2)
    assert results["Dice-vertebra"] == results["Dice"]
    with open(os.path.join(out, "sem_seg_dice_per_image.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file_name", "Dice-vertebra", "IoU-vertebra"]
    assert [float(v) for v in rows[2][1:]] == [1.0, 1.0]  # b.png


def test_evaluator_on_volumes_equals_monai():
    MetadataCatalog.get("dice_volumes").set(stuff_classes=["background", "liver", "vessel"],
                                            evaluator_type="sem_seg_dice")
    rng = np.random.default_rng(5)
    gts = [rng.integers(0, 3, (6, 7, 5)), np.zeros((4, 4, 4), np.int64)]
    preds = [np.where(rng.random(gts[0].shape) < 0.6, gts[0], 0), np.zeros((4, 4, 4), np.int64)]
    inputs = [{"file_name": f"case{i}.nii.gz", "sem_seg": torch.as_tensor(gt)}
              for i, gt in enumerate(gts)]
    outputs = [{"sem_seg": _onehot(pred, 3)[0].float()} for pred in preds]
    evaluator = SemSegDiceEvaluator("dice_volumes", distributed=False)
    evaluator.process(inputs, outputs)
    results = evaluator.evaluate()["sem_seg"]
    first = _monai(preds[0], gts[0], 2)
    expected_dice = 100 * (first[0] + 1.0) / 2  # the empty volume scores 1 for both classes
    assert results["Dice-liver"] == pytest.approx(expected_dice[0])
    assert results["Dice-vessel"] == pytest.approx(expected_dice[1])
    assert results["IoU"] == pytest.approx(100 * np.mean((first[1] + 1.0) / 2))
    MetadataCatalog.pop("dice_volumes")


def test_inputs_without_ground_truth_or_of_another_frame_are_rejected():
    MetadataCatalog.get("dice_frames").set(stuff_classes=["background", "vertebra"])
    evaluator = SemSegDiceEvaluator("dice_frames", distributed=False)
    with pytest.raises(KeyError, match="'x.png' has no 'sem_seg'.*SemSegDatasetMapper"):
        evaluator.process([{"file_name": "x.png"}], [_scores(np.zeros((4, 4)))])
    with pytest.raises(ValueError, match=r"'x.png': Prediction \(4, 4\) and ground truth \(8, 8\)"):
        evaluator.process([{"file_name": "x.png", "sem_seg": torch.zeros(8, 8).long()}],
                          [_scores(np.zeros((4, 4)))])
    MetadataCatalog.pop("dice_frames")


def test_dataset_without_stuff_classes_is_rejected():
    MetadataCatalog.get("dice_no_classes").set(evaluator_type="sem_seg_dice")
    with pytest.raises(ValueError, match="stuff_classes"):
        SemSegDiceEvaluator("dice_no_classes")
    MetadataCatalog.pop("dice_no_classes")
