"""Matching and metrics of the vertebra-level evaluator on hand-built cases."""
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

from vertspine.evaluation.vertebra_level_metrics import match_levels, vertebra_level_metrics

NAMES = [f"V{k}" for k in range(6)]


def boxes(*rows):
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def test_identity_matching_keeps_the_best_scoring_prediction_per_vertebra():
    gt = boxes([0, 0, 10, 10], [0, 10, 10, 20], [0, 20, 10, 30])
    # top-k (box, level) pairs: box 0 twice, box 2 once, box 1 never
    levels = match_levels(gt, gt[[0, 0, 2]], np.array([3, 1, 4]), np.array([0.2, 0.7, 0.5]),
                          np.array([0, 0, 2]))
    assert levels.tolist() == [1, -1, 4]


def test_identity_ignores_geometry_and_out_of_range_indices_raise():
    gt = boxes([0, 0, 10, 10], [0, 10, 10, 20])
    far_away = boxes([100, 100, 110, 110])
    assert match_levels(gt, far_away, np.array([5]), np.array([0.9]), np.array([1])).tolist() == [-1, 5]
    with pytest.raises(ValueError, match="gt_index 2, but the image has 2"):
        match_levels(gt, far_away, np.array([5]), np.array([0.9]), np.array([2]))


def test_iou_matching_is_greedy_by_score_as_coco():
    gt = boxes([0, 0, 10, 10], [0, 5, 10, 15])  # A, B
    # P1 overlaps A most (IoU 0.667) but also B (0.538); P2 overlaps only A (0.538)
    preds = boxes([0, 2, 10, 12], [0, -3, 10, 7])
    levels = match_levels(gt, preds, np.array([7, 9]), np.array([0.9, 0.8]))
    assert levels.tolist() == [7, -1]  # P1 first takes A; Hungarian would give [9, 7]
    # with P2 scoring higher it goes first: A to P2, then P1 to B
    assert match_levels(gt, preds, np.array([7, 9]), np.array([0.7, 0.8])).tolist() == [9, 7]
    strict = match_levels(gt, preds, np.array([7, 9]), np.array([0.7, 0.8]), iou_threshold=0.6)
    assert strict.tolist() == [7, -1]


def test_a_low_score_high_iou_box_does_not_displace_a_high_score_box():
    gt = boxes([0, 0, 10, 10], [0, 10, 10, 20], [0, 20, 10, 30])  # levels 0, 1, 2
    preds = boxes([0, 2, 10, 12],  # 0.9, level 0, IoU 80/120 = 0.667 with vertebra 0
                  [0, 0, 10, 9.05],  # 0.05, level 3, IoU 90.5/100 = 0.905 with vertebra 0
                  [0, 10, 10, 20], [0, 20, 10, 30])  # right boxes and levels for 1 and 2
    classes, scores = np.array([0, 3, 1, 2]), np.array([0.9, 0.05, 0.8, 0.7])
    levels = match_levels(gt, preds, classes, scores)
    assert levels.tolist() == [0, 1, 2]  # an IoU-sum maximum gives [3, 1, 2]
    metrics, _ = vertebra_level_metrics([(np.array([0, 1, 2]), levels)], NAMES)
    assert metrics["IDR"] == 100.0  # the IoU-sum maximum: 66.7


def test_iou_matching_collapses_identical_boxes_and_applies_the_score_threshold():
    gt = boxes([0, 0, 10, 10], [0, 10, 10, 20])
    preds = boxes([0, 0, 10, 10], [0, 0, 10, 10], [0, 10, 10, 20], [0, 11, 10, 21])
    classes, scores = np.array([1, 2, 3, 4]), np.array([0.3, 0.6, 0.05, 0.5])
    # box 0 collapses to its 0.6 copy; then by score: 0.6 (vertebra 0), 0.5 (IoU 9/11 with
    # vertebra 1) takes vertebra 1 before the exact 0.05 box
    assert match_levels(gt, preds, classes, scores).tolist() == [2, 4]
    assert match_levels(gt, preds, classes, scores, score_threshold=0.1).tolist() == [2, 4]
    assert match_levels(gt, preds[:3], classes[:3], scores[:3]).tolist() == [2, 3]
    assert match_levels(gt, preds, classes, scores, score_threshold=0.55).tolist() == [2, -1]
    # identity first, the detector box then only competes for the vertebrae left over
    mixed = match_levels(gt, preds[[0, 3]], np.array([5, 4]), np.array([0.1, 0.9]), np.array([1, -1]))
    assert mixed.tolist() == [-1, 5]  # [0,11,10,21] has IoU 0 with vertebra 0


def test_metrics_on_a_hand_built_case():
    per_image = [
        (np.array([0, 1, 2]), np.array([0, 1, 2])),  # all right
        (np.array([2, 3, 4]), np.array([3, 4, 5])),  # all one off
        (np.array([1, 2]), np.array([1, -1])),  # one unmatched
        (np.array([], dtype=np.int64), np.array([], dtype=np.int64)),  # no vertebra: not counted
        (np.array([5]), np.array([2])),  # three off
    ]
    metrics, confusion = vertebra_level_metrics(per_image, NAMES)
    assert metrics["num_vertebrae"] == 9 and metrics["num_images"] == 4
    assert metrics["IDR"] == pytest.approx(100 * 4 / 9)
    assert metrics["IRA"] == pytest.approx(25.0)
    assert metrics["matched"] == pytest.approx(100 * 8 / 9)
    assert metrics["off_by_one"] == pytest.approx(100 * 3 / 9)
    assert metrics["MAE"] == pytest.approx((0 + 0 + 0 + 1 + 1 + 1 + 0 + 3) / 8)
    assert metrics["acc-V2"] == pytest.approx(100 / 3) and metrics["acc-V5"] == 0.0
    assert "acc-V0" in metrics and metrics["acc-V0"] == 100.0
    assert confusion.shape == (6, 7) and confusion[2, 6] == 1 and confusion[5, 2] == 1
    assert confusion.sum() == 9


def test_parity_with_sklearn_on_random_levels():
    rng = np.random.default_rng(0)
    per_image = []
    for _ in range(40):
        gt = rng.integers(0, 6, size=rng.integers(0, 7))
        pred = np.where(rng.random(gt.size) < 0.6, gt, rng.integers(-1, 6, size=gt.size))
        per_image.append((gt, pred))
    metrics, confusion = vertebra_level_metrics(per_image, NAMES)
    y_true = np.concatenate([g for g, _ in per_image])
    y_pred = np.concatenate([p for _, p in per_image])
    assert metrics["IDR"] == pytest.approx(100 * accuracy_score(y_true, y_pred))
    matched = y_pred >= 0
    assert np.array_equal(confusion[:, :6], confusion_matrix(y_true[matched], y_pred[matched], labels=range(6)))
    assert np.array_equal(confusion[:, 6], np.bincount(y_true[~matched], minlength=6))
    recalls = recall_score(y_true, y_pred, labels=list(range(6)), average=None, zero_division=0)
    for k, name in enumerate(NAMES):
        assert metrics[f"acc-{name}"] == pytest.approx(100 * recalls[k])
    all_right = [bool(np.all(g == p)) for g, p in per_image if len(g)]
    assert metrics["IRA"] == pytest.approx(100 * np.mean(all_right))
