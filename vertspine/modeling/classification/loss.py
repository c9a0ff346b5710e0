"""The image-level classification loss: BCE on one logit (binary) or softmax cross-entropy."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassificationLoss"]


class ClassificationLoss(nn.Module):
    """Binary cross-entropy on one logit, or cross-entropy over C logits, averaged over images.

    Labels are checked against the logit count, because an out-of-range label would otherwise
    fail deep inside the loss (or, for BCE, train on a target that is not 0/1).
    """

    def __init__(self, num_logits: int, pos_weight: float = 0.0,
                 class_weights: Optional[Sequence[float]] = None):
        """
        Args:
            num_logits: 1 (binary, sigmoid) or C >= 2 (softmax).
            pos_weight: binary only; weight of positive examples in the BCE (0 = unweighted).
            class_weights: softmax only; C per-class weights (None/empty = unweighted).
        """
        super().__init__()
        self.num_logits = num_logits
        class_weights = list(class_weights or [])
        if num_logits == 1 and class_weights:
            raise ValueError("MODEL.IMAGE_CLASSIFIER.CLASS_WEIGHTS is for softmax classifiers "
                             "(NUM_CLASSES >= 2); a binary classifier uses POS_WEIGHT.")
        if num_logits > 1 and pos_weight > 0:
            raise ValueError("MODEL.IMAGE_CLASSIFIER.POS_WEIGHT is for binary classifiers "
                             "(NUM_CLASSES 1); use CLASS_WEIGHTS with NUM_CLASSES >= 2.")
        if class_weights and len(class_weights) != num_logits:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.CLASS_WEIGHTS has {len(class_weights)} "
                             f"values for NUM_CLASSES {num_logits}; give one per class.")
        if pos_weight < 0:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.POS_WEIGHT is {pos_weight}; use >= 0.")
        self.register_buffer("pos_weight", torch.tensor([pos_weight]) if pos_weight > 0 else None,
                             persistent=False)
        self.register_buffer("class_weights",
                             torch.tensor(class_weights, dtype=torch.float32)
                             if class_weights else None, persistent=False)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """
        Args:
            logits: [B, num_logits].
            labels: [B] integer class indices (0/1 for a binary classifier).
        Returns:
            The scalar mean loss.
        """
        num_classes = max(self.num_logits, 2)
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"Labels {sorted(set(labels.tolist()))} are outside 0..{num_classes - 1} for "
                f"MODEL.IMAGE_CLASSIFIER.NUM_CLASSES {self.num_logits}; check the dataset's "
                "'label' values and NUM_CLASSES (1 = binary).")
        if self.num_logits == 1:
            return F.binary_cross_entropy_with_logits(
                logits[:, 0], labels.to(logits.dtype), pos_weight=self.pos_weight)
        return F.cross_entropy(logits, labels, weight=self.class_weights)
