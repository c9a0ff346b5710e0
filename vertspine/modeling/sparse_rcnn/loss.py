"""The set criterion of Sparse R-CNN: Hungarian matching, then classification and box losses.

For every supervised stage: proposals are matched one-to-one to the ground truth
(:class:`HungarianMatcher`); the classification loss covers all proposals (unmatched ones are
background), the box losses only the matched ones. The focal and box losses are sums divided by
the number of ground-truth boxes averaged over processes (at least 1), so images without ground
truth train as pure negatives; the softmax cross-entropy (``USE_FOCAL False``) is a weighted mean,
as upstream. The last stage's losses are ``loss_ce``, ``loss_bbox``, ``loss_giou``; with deep
supervision stage ``i`` < last adds the same names suffixed ``_i``. Returned losses are weighted.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.structures import Instances
from detectron2.utils import comm
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from .matcher import HungarianMatcher, image_whwh, sanitize_boxes

__all__ = ["SetCriterion", "average_num_boxes"]

Indices = List[Tuple[Tensor, Tensor]]


def average_num_boxes(targets: List[Instances], device: torch.device) -> float:
    """Ground-truth boxes per process: this batch's count averaged over processes, at least 1."""
    num_boxes = torch.tensor([float(sum(len(t) for t in targets))], device=device)
    if comm.get_world_size() > 1:
        torch.distributed.all_reduce(num_boxes)
        num_boxes = num_boxes / comm.get_world_size()
    return max(num_boxes.item(), 1.0)


class SetCriterion(nn.Module):
    """Sparse R-CNN's losses for all stages of the dynamic head."""

    @configurable
    def __init__(self, *, matcher: HungarianMatcher, num_classes: int, class_weight: float,
                 l1_weight: float, giou_weight: float, deep_supervision: bool = True,
                 use_focal: bool = True, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 no_object_weight: float = 0.1):
        """
        Args:
            matcher: assigns ground truth to proposals, per stage.
            num_classes: K foreground classes.
            class_weight, l1_weight, giou_weight: weights of ``loss_ce``, ``loss_bbox``,
                ``loss_giou`` (and their ``_i`` variants).
            deep_supervision: also supervise every stage before the last.
            use_focal: sigmoid focal loss over K logits (True) or softmax cross-entropy over
                K+1 logits whose last is "no object" (False).
            focal_alpha, focal_gamma: focal loss parameters.
            no_object_weight: cross-entropy weight of the no-object class (softmax only).
        """
        super().__init__()
        self.matcher = matcher
        self.num_classes = num_classes
        self.weights = {"loss_ce": class_weight, "loss_bbox": l1_weight, "loss_giou": giou_weight}
        self.deep_supervision = deep_supervision
        self.use_focal = use_focal
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        class_weights = torch.ones(num_classes + 1)
        class_weights[-1] = no_object_weight
        self.register_buffer("class_weights", class_weights, persistent=False)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.SPARSE_RCNN
        return {
            "matcher": HungarianMatcher(cfg), "num_classes": node.NUM_CLASSES,
            "class_weight": node.CLASS_WEIGHT, "l1_weight": node.L1_WEIGHT,
            "giou_weight": node.GIOU_WEIGHT, "deep_supervision": node.DEEP_SUPERVISION,
            "use_focal": node.USE_FOCAL, "focal_alpha": node.ALPHA, "focal_gamma": node.GAMMA,
            "no_object_weight": node.NO_OBJECT_WEIGHT,
        }

    def loss_labels(self, logits: Tensor, targets: List[Instances], indices: Indices,
                    num_boxes: float) -> Tensor:
        """Classification loss of one stage (unweighted).

        Args:
            logits: [B, N, K] (focal) or [B, N, K+1] (softmax) class logits.
            targets, indices: ground truth and the matching of this stage.
            num_boxes: the normaliser of the focal loss sum.
        """
        target_classes = torch.full(logits.shape[:2], self.num_classes, dtype=torch.int64,
                                    device=logits.device)
        for image, (src, tgt) in enumerate(indices):
            target_classes[image, src] = targets[image].gt_classes[tgt]
        if not self.use_focal:
            return F.cross_entropy(logits.transpose(1, 2), target_classes, self.class_weights)
        one_hot = F.one_hot(target_classes, self.num_classes + 1)[..., :-1].to(logits.dtype)
        return sigmoid_focal_loss(logits, one_hot, alpha=self.focal_alpha, gamma=self.focal_gamma,
                                  reduction="sum") / num_boxes

    @staticmethod
    def loss_boxes(boxes: Tensor, targets: List[Instances], indices: Indices,
                   num_boxes: float) -> Tuple[Tensor, Tensor]:
        """L1 and GIoU losses of the matched proposals of one stage (unweighted).

        Args:
            boxes: [B, N, 4] predicted boxes, XYXY absolute pixels of each unpadded input image.
            targets, indices: ground truth (``gt_boxes`` in the same frame) and the matching.
            num_boxes: the normaliser of both sums.
        Returns:
            (L1 on image-normalised XYXY boxes, 1 - GIoU), each summed and divided by num_boxes.
        """
        src = torch.cat([boxes[image, i] for image, (i, _) in enumerate(indices)])
        tgt = torch.cat([t.gt_boxes.tensor[j] for t, (_, j) in zip(targets, indices)])
        whwh = torch.cat([image_whwh(t).expand(len(j), 4) for t, (_, j) in zip(targets, indices)])
        loss_l1 = F.l1_loss(src / whwh, tgt / whwh, reduction="sum") / num_boxes
        loss_giou = generalized_box_iou_loss(sanitize_boxes(src), sanitize_boxes(tgt),
                                             reduction="sum") / num_boxes
        return loss_l1, loss_giou

    def stage_losses(self, logits: Tensor, boxes: Tensor, targets: List[Instances],
                     num_boxes: float) -> Dict[str, Tensor]:
        """Match one stage's predictions and return its weighted losses (unsuffixed names)."""
        indices = self.matcher(logits, boxes, targets)
        loss_l1, loss_giou = self.loss_boxes(boxes, targets, indices, num_boxes)
        losses = {
            "loss_ce": self.loss_labels(logits, targets, indices, num_boxes),
            "loss_bbox": loss_l1,
            "loss_giou": loss_giou,
        }
        return {name: self.weights[name] * value for name, value in losses.items()}

    def forward(self, logits: Tensor, boxes: Tensor,
                targets: List[Instances]) -> Dict[str, Tensor]:
        """All weighted losses.

        Args:
            logits: [S, B, N, K] (or K+1) class logits of the S stages.
            boxes: [S, B, N, 4] boxes of the S stages, XYXY absolute pixels of each unpadded
                input image.
            targets: B ``Instances`` with ``gt_boxes`` (XYXY absolute pixels, same frame) and
                ``gt_classes``, on the predictions' device; an image may have none.
        Returns:
            ``loss_ce``, ``loss_bbox``, ``loss_giou`` of the last stage and, with deep supervision,
            the same suffixed ``_0`` .. ``_{S-2}`` for the earlier stages.
        Raises:
            ValueError: when a ground-truth class id is outside [0, K).
        """
        classes = torch.cat([t.gt_classes for t in targets])
        if len(classes) and not 0 <= int(classes.min()) <= int(classes.max()) < self.num_classes:
            raise ValueError(
                f"Ground-truth class ids {sorted(set(classes.tolist()))} do not fit "
                f"MODEL.SPARSE_RCNN.NUM_CLASSES {self.num_classes} (ids must be 0..K-1)."
            )
        num_boxes = average_num_boxes(targets, logits.device)
        losses = self.stage_losses(logits[-1], boxes[-1], targets, num_boxes)
        if self.deep_supervision:
            for stage in range(logits.shape[0] - 1):
                stage_losses = self.stage_losses(logits[stage], boxes[stage], targets, num_boxes)
                losses.update({f"{name}_{stage}": value for name, value in stage_losses.items()})
        return losses
