"""SetCriterion against independent computations: torchvision's focal loss and GIoU, L1 by hand."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from detectron2.utils import comm
from torchvision.ops import generalized_box_iou, sigmoid_focal_loss

from test_sparse_rcnn_matcher import WEIGHTS, make_targets, random_boxes
from vertspine.engine import launch
from vertspine.modeling.sparse_rcnn import HungarianMatcher, SetCriterion
from vertspine.modeling.sparse_rcnn.loss import average_num_boxes

K = 4


def criterion(**kwargs):
    args = dict(matcher=HungarianMatcher(**WEIGHTS), num_classes=K, class_weight=2.0,
                l1_weight=5.0, giou_weight=2.0)
    args.update(kwargs)
    return SetCriterion(**args)


@pytest.fixture
def example():
    """Two stages, two images of 5 proposals; 3 ground-truth boxes in all."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 2, 5, K, generator=generator)
    boxes = torch.stack([torch.stack([random_boxes(generator, 5) for _ in range(2)])
                         for _ in range(2)])
    targets = [make_targets(random_boxes(generator, 2).tolist(), [1, 3]),
               make_targets(random_boxes(generator, 1).tolist(), [2])]
    return logits, boxes, targets


def expected_stage_losses(logits, boxes, targets, indices, num_boxes):
    """Losses of one stage computed independently from the matching ``indices``."""
    one_hot = torch.zeros_like(logits)
    l1, giou = 0.0, 0.0
    for image, (rows, cols) in enumerate(indices):
        whwh = (200.0, 100.0, 200.0, 100.0)
        for r, c in zip(rows.tolist(), cols.tolist()):
            one_hot[image, r, targets[image].gt_classes[c]] = 1.0
            pred, gt = boxes[image, r], targets[image].gt_boxes.tensor[c]
            l1 += sum(abs(pred[k].item() - gt[k].item()) / whwh[k] for k in range(4))
            giou += 1 - generalized_box_iou(pred[None], gt[None])[0, 0].item()
    focal = sigmoid_focal_loss(logits, one_hot, alpha=0.25, gamma=2.0, reduction="sum")
    return {"loss_ce": 2.0 * focal.item() / num_boxes, "loss_bbox": 5.0 * l1 / num_boxes,
            "loss_giou": 2.0 * giou / num_boxes}


def test_losses_equal_independent_computation(example):
    logits, boxes, targets = example
    loss = criterion()
    losses = loss(logits, boxes, targets)
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou",
                           "loss_ce_0", "loss_bbox_0", "loss_giou_0"}
    for stage, suffix in ((1, ""), (0, "_0")):
        indices = loss.matcher(logits[stage], boxes[stage], targets)
        expected = expected_stage_losses(logits[stage], boxes[stage], targets, indices, 3.0)
        for name, value in expected.items():
            assert losses[name + suffix].item() == pytest.approx(value, rel=1e-5), name + suffix


def test_without_deep_supervision_only_the_last_stage_is_supervised(example):
    logits, boxes, targets = example
    losses = criterion(deep_supervision=False)(logits, boxes, targets)
    assert set(losses) == {"loss_ce", "loss_bbox", "loss_giou"}
    assert losses["loss_ce"].item() == pytest.approx(
        criterion()(logits, boxes, targets)["loss_ce"].item())


def test_images_without_ground_truth_are_all_negatives(example):
    logits, boxes, _ = example
    logits.requires_grad_(True)
    boxes.requires_grad_(True)
    empty = [make_targets([], []), make_targets([], [])]
    losses = criterion()(logits, boxes, empty)
    negatives = sigmoid_focal_loss(logits[1], torch.zeros_like(logits[1]), reduction="sum")
    # normalised by max(num_boxes, 1) = 1
    assert losses["loss_ce"].item() == pytest.approx(2.0 * negatives.item(), rel=1e-5)
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_giou"].item() == 0.0
    sum(losses.values()).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(boxes.grad).all()


def test_degenerate_ground_truth_gives_finite_losses(example):
    logits, boxes, _ = example
    targets = [make_targets([[10, 10, 10, 30], [50, 50, 40, 40]], [0, 1]),
               make_targets([[0, 0, 0, 0]], [2])]
    losses = criterion()(logits, boxes, targets)
    assert all(torch.isfinite(value) for value in losses.values())


def test_softmax_variant_uses_weighted_cross_entropy(example):
    logits, boxes, targets = example
    logits = torch.cat([logits, torch.zeros_like(logits[..., :1])], dim=-1)  # K + 1 outputs
    loss = criterion(matcher=HungarianMatcher(**WEIGHTS, use_focal=False), use_focal=False,
                     no_object_weight=0.1, deep_supervision=False)
    indices = loss.matcher(logits[1], boxes[1], targets)
    target_classes = torch.full((2, 5), K)
    for image, (rows, cols) in enumerate(indices):
        target_classes[image, rows] = targets[image].gt_classes[cols]
    weight = torch.tensor([1.0] * K + [0.1])
    expected = F.cross_entropy(logits[1].reshape(-1, K + 1), target_classes.flatten(), weight)
    assert loss(logits, boxes, targets)["loss_ce"].item() == pytest.approx(2.0 * expected.item())


# (boxes in process 0, boxes in process 1) -> the normaliser both processes must use
NUM_BOXES_CASES = [((3, 0), 1.5), ((4, 2), 3.0), ((0, 0), 1.0), ((1, 0), 1.0)]


def _num_boxes_in_process(output_dir):
    generator = torch.Generator().manual_seed(comm.get_rank())
    values = []
    for counts, _ in NUM_BOXES_CASES:
        count = counts[comm.get_rank()]
        targets = [make_targets(random_boxes(generator, count).tolist(), [0] * count)]
        values.append(average_num_boxes(targets, torch.device("cpu")))
    with open(os.path.join(output_dir, f"rank{comm.get_rank()}.json"), "w") as f:
        json.dump(values, f)


def test_num_boxes_is_averaged_over_two_gloo_processes(tmp_path):
    launch(_num_boxes_in_process, 2, args=(str(tmp_path),))
    expected = [value for _, value in NUM_BOXES_CASES]
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.json") as f:
            assert json.load(f) == expected


def test_class_ids_beyond_num_classes_raise(example):
    logits, boxes, targets = example
    targets[1].gt_classes[0] = K  # one past the last class
    with pytest.raises(ValueError, match="MODEL.SPARSE_RCNN.NUM_CLASSES 4"):
        criterion()(logits, boxes, targets)
