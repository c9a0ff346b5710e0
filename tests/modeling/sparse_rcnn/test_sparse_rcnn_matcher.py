"""HungarianMatcher: the cost against a hand computation, the assignment against brute force."""
import itertools
import math

import pytest
import torch
from detectron2.structures import Boxes, Instances

from vertspine.modeling.sparse_rcnn import HungarianMatcher
from vertspine.modeling.sparse_rcnn.matcher import sanitize_boxes

ALPHA, GAMMA = 0.25, 2.0
WEIGHTS = {"cost_class": 2.0, "cost_bbox": 5.0, "cost_giou": 2.0}  # upstream defaults


def make_targets(boxes, classes, height=100, width=200):
    targets = Instances((height, width))
    targets.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    targets.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return targets


def hand_giou(a, b):
    def area(box):
        return (box[2] - box[0]) * (box[3] - box[1])

    inter = (max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
             * max(0.0, min(a[3], b[3]) - max(a[1], b[1])))
    union = area(a) + area(b) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
    return inter / union - (hull - union) / hull


def hand_cost(logit, box, gt_class, gt_box, whwh):
    p = 1 / (1 + math.exp(-logit[gt_class]))
    focal = (ALPHA * (1 - p) ** GAMMA * -math.log(p + 1e-8)
             - (1 - ALPHA) * p ** GAMMA * -math.log(1 - p + 1e-8))
    l1 = sum(abs(u / s - v / s) for u, v, s in zip(box, gt_box, whwh))
    return (WEIGHTS["cost_class"] * focal + WEIGHTS["cost_bbox"] * l1
            - WEIGHTS["cost_giou"] * hand_giou(box, gt_box))


def random_boxes(generator, n, width=200, height=100):
    xy = torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.7, height * 0.7])
    wh = 5 + torch.rand(n, 2, generator=generator) * torch.tensor([width * 0.3, height * 0.3])
    return torch.cat([xy, xy + wh], dim=1)


@pytest.fixture
def example():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=generator) * 2
    boxes = random_boxes(generator, 5)
    targets = make_targets(random_boxes(generator, 3).tolist(), [2, 0, 3])
    return logits, boxes, targets


def test_cost_matrix_equals_hand_computation(example):
    logits, boxes, targets = example
    cost = HungarianMatcher(**WEIGHTS).cost_matrix(logits, boxes, targets)
    whwh = (200.0, 100.0, 200.0, 100.0)
    expected = [[hand_cost(logits[i].tolist(), boxes[i].tolist(), int(targets.gt_classes[j]),
                           targets.gt_boxes.tensor[j].tolist(), whwh) for j in range(3)]
                for i in range(5)]
    torch.testing.assert_close(cost, torch.tensor(expected), rtol=1e-5, atol=1e-5)


def test_assignment_equals_brute_force_over_permutations(example):
    logits, boxes, targets = example
    matcher = HungarianMatcher(**WEIGHTS)
    cost = matcher.cost_matrix(logits, boxes, targets)
    best = min(itertools.permutations(range(5), 3),
               key=lambda rows: sum(cost[r, c].item() for c, r in enumerate(rows)))
    (rows, cols), = matcher(logits[None], boxes[None], [targets])
    matched = {int(c): int(r) for r, c in zip(rows, cols)}
    assert matched == {c: r for c, r in enumerate(best)}
    assert rows.tolist() == sorted(rows.tolist())


def test_image_without_ground_truth_matches_nothing(example):
    logits, boxes, targets = example
    indices = HungarianMatcher(**WEIGHTS)(
        torch.stack([logits, logits]), torch.stack([boxes, boxes]), [make_targets([], []), targets]
    )
    assert [len(rows) for rows, _ in indices] == [0, 3]


def test_degenerate_ground_truth_gives_finite_costs(example):
    logits, boxes, _ = example
    targets = make_targets([[10, 10, 10, 30], [50, 50, 40, 40], [0, 0, 0, 0]], [0, 1, 2])
    cost = HungarianMatcher(**WEIGHTS).cost_matrix(logits, boxes, targets)
    assert torch.isfinite(cost).all()
    assert len(HungarianMatcher(**WEIGHTS)(logits[None], boxes[None], [targets])[0][0]) == 3


def test_diverged_predictions_raise_a_clear_error(example):
    logits, boxes, targets = example
    boxes = boxes.clone()
    boxes[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="SOLVER.BASE_LR"):
        HungarianMatcher(**WEIGHTS)(logits[None], boxes[None], [targets])


@pytest.mark.parametrize("boxes, expected", [
    ([[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0, 4.0]]),  # valid: unchanged
    ([[3.0, 4.0, 1.0, 2.0]], [[1.0, 2.0, 3.0, 4.0]]),  # inverted: corners reordered
    ([[5.0, 5.0, 5.0, 9.0]], [[5.0, 5.0, 5.01, 9.0]]),  # zero width: widened by min_size
])
def test_sanitize_boxes(boxes, expected):
    torch.testing.assert_close(sanitize_boxes(torch.tensor(boxes)), torch.tensor(expected))


def test_all_zero_cost_weights_are_rejected():
    with pytest.raises(ValueError, match="CLASS_WEIGHT"):
        HungarianMatcher(cost_class=0, cost_bbox=0, cost_giou=0)
