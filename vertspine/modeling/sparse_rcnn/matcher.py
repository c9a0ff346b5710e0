"""One-to-one matching of Sparse R-CNN's proposals to the ground truth (Hungarian algorithm).

Each image is matched on its own with scipy's ``linear_sum_assignment`` over the cost
``cost_class * class + cost_bbox * L1 + cost_giou * (-GIoU)``: the class cost is the focal loss
of the target class (or minus its softmax probability), L1 is taken on boxes normalised by the
image size, GIoU on absolute boxes.
"""
from typing import List, Tuple

import torch
from detectron2.config import configurable
from detectron2.structures import Instances
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou

__all__ = ["HungarianMatcher", "image_whwh", "sanitize_boxes"]


def sanitize_boxes(boxes: Tensor, min_size: float = 1e-2) -> Tensor:
    """Make boxes valid for torchvision's GIoU: ordered corners and sides of at least ``min_size``.

    ``generalized_box_iou`` divides by the union and the enclosing area, so an inverted or
    zero-area box gives inf/NaN (and DETR's version asserts). Valid boxes are returned unchanged.

    Args:
        boxes: [M, 4] XYXY boxes in any frame (``min_size`` is in that frame's units).
    Returns:
        [M, 4] XYXY boxes with ``x1 < x2`` and ``y1 < y2``.
    """
    low = torch.minimum(boxes[:, :2], boxes[:, 2:])
    high = torch.maximum(torch.maximum(boxes[:, :2], boxes[:, 2:]), low + min_size)
    return torch.cat([low, high], dim=1)


def image_whwh(instances: Instances) -> Tensor:
    """[4] tensor (w, h, w, h) of the unpadded image the instances live in, on their device."""
    height, width = instances.image_size
    return torch.tensor([width, height, width, height], dtype=torch.float32,
                        device=instances.gt_boxes.device)


class HungarianMatcher(nn.Module):
    """Matches each ground-truth box to one proposal, per image; the other proposals are
    background. Has no parameters and runs without gradients."""

    @configurable
    def __init__(self, *, cost_class: float, cost_bbox: float, cost_giou: float,
                 use_focal: bool = True, focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        """
        Args:
            cost_class: weight of the classification cost.
            cost_bbox: weight of the L1 cost between image-normalised XYXY boxes.
            cost_giou: weight of the negative generalised IoU.
            use_focal: class cost from the sigmoid focal loss (True) or from softmax (False).
            focal_alpha, focal_gamma: focal loss parameters of the class cost.
        """
        super().__init__()
        if cost_class == 0 and cost_bbox == 0 and cost_giou == 0:
            raise ValueError("HungarianMatcher: all cost weights are 0 (MODEL.SPARSE_RCNN."
                             "CLASS_WEIGHT, L1_WEIGHT, GIOU_WEIGHT); set at least one.")
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.use_focal = use_focal
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.SPARSE_RCNN
        return {
            "cost_class": node.CLASS_WEIGHT, "cost_bbox": node.L1_WEIGHT,
            "cost_giou": node.GIOU_WEIGHT, "use_focal": node.USE_FOCAL,
            "focal_alpha": node.ALPHA, "focal_gamma": node.GAMMA,
        }

    def class_cost(self, logits: Tensor, gt_classes: Tensor) -> Tensor:
        """[N, M] classification cost of predicting each target's class with each proposal.

        Args:
            logits: [N, K] class logits (K+1 with the no-object class when not focal).
            gt_classes: [M] int64 class ids in [0, K).
        """
        if not self.use_focal:
            return -logits.softmax(-1)[:, gt_classes]
        prob = logits.sigmoid()[:, gt_classes]
        alpha, gamma = self.focal_alpha, self.focal_gamma
        positive = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
        negative = (1 - alpha) * prob ** gamma * -(1 - prob + 1e-8).log()
        return positive - negative

    def cost_matrix(self, logits: Tensor, boxes: Tensor, targets: Instances) -> Tensor:
        """[N, M] matching cost of one image.

        Args:
            logits: [N, K] class logits of the image's proposals.
            boxes: [N, 4] predicted boxes, XYXY absolute pixels of the unpadded input image.
            targets: the image's ground truth: ``gt_boxes`` (XYXY absolute pixels, same frame),
                ``gt_classes`` and ``image_size``.
        """
        gt_boxes = targets.gt_boxes.tensor
        whwh = image_whwh(targets)
        cost_l1 = torch.cdist(boxes / whwh, gt_boxes / whwh, p=1)
        cost_giou = -generalized_box_iou(sanitize_boxes(boxes), sanitize_boxes(gt_boxes))
        return (self.cost_class * self.class_cost(logits, targets.gt_classes)
                + self.cost_bbox * cost_l1 + self.cost_giou * cost_giou)

    @torch.no_grad()
    def forward(self, logits: Tensor, boxes: Tensor,
                targets: List[Instances]) -> List[Tuple[Tensor, Tensor]]:
        """Match every image of the batch.

        Args:
            logits: [B, N, K] class logits.
            boxes: [B, N, 4] predicted boxes, XYXY absolute pixels of each unpadded input image.
            targets: B ground truths (see :meth:`cost_matrix`); an image may have none.
        Returns:
            B pairs (proposal indices, ground-truth indices), each an int64 tensor on the
            logits' device of length min(N, M); proposal indices increase.
        Raises:
            FloatingPointError: when a cost is NaN or infinite (the predictions diverged).
        """
        indices = []
        device = logits.device
        for image_logits, image_boxes, image_targets in zip(logits, boxes, targets):
            if len(image_targets) == 0:
                empty = torch.zeros(0, dtype=torch.int64, device=device)
                indices.append((empty, empty))
                continue
            cost = self.cost_matrix(image_logits, image_boxes, image_targets).float().cpu()
            if not torch.isfinite(cost).all():
                raise FloatingPointError(
                    "Sparse R-CNN matching cost is NaN or infinite: the predicted boxes or logits "
                    "diverged. Lower SOLVER.BASE_LR (upstream: 2.5e-5 at batch 16) or enable "
                    "SOLVER.CLIP_GRADIENTS."
                )
            rows, cols = linear_sum_assignment(cost.numpy())
            indices.append((torch.as_tensor(rows, dtype=torch.int64, device=device),
                            torch.as_tensor(cols, dtype=torch.int64, device=device)))
        return indices
