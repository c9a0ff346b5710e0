"""LiteMedSAM's training loss: soft Dice + BCE on the mask logits + MSE on the predicted IoU.

As bowang-lab/MedSAM (LiteMedSAM) ``train_one_gpu.py``: MONAI ``DiceLoss(sigmoid=True,
squared_pred=True, reduction="mean")``, ``BCEWithLogitsLoss`` (mean over pixels and boxes) and
``MSELoss`` between the IoU head's output and the IoU of ``sigmoid(logits) > 0.5`` with the
ground truth (no gradient through that target). One fix: the original's IoU is 0 / 0 = NaN for
a box whose prediction and ground truth are both empty; here it is 1 (they agree).
MONAI is imported when the loss is built.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PromptSegLoss", "mask_iou"]


def mask_iou(pred: Tensor, target: Tensor) -> Tensor:
    """IoU of boolean masks [M, H, W] -> [M] float; 1 where both masks are empty."""
    inter = (pred & target).flatten(1).sum(1).float()
    union = (pred | target).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


class PromptSegLoss(nn.Module):
    """Weighted soft Dice, BCE and IoU-regression losses of box-prompted masks.

    Args:
        dice_weight, bce_weight, iou_weight: the terms' weights (LiteMedSAM: 1, 1, 1).
    """

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0,
                 iou_weight: float = 1.0):
        super().__init__()
        from monai.losses import DiceLoss

        self.dice = DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
        self.weights = {"loss_dice": dice_weight, "loss_bce": bce_weight, "loss_iou": iou_weight}

    def forward(self, logits: Tensor, targets: Tensor, iou_pred: Tensor) -> Dict[str, Tensor]:
        """Losses of M > 0 boxes.

        Args:
            logits: [M, S, S] mask logits in the model frame.
            targets: [M, S, S] ground-truth masks (0/1, any dtype), same frame.
            iou_pred: [M] the IoU head's predictions.
        Returns:
            {"loss_dice", "loss_bce", "loss_iou"}: scalars, each times its weight.
        """
        targets = targets.to(logits.dtype)
        with torch.no_grad():
            iou_true = mask_iou(logits > 0, targets > 0.5)  # sigmoid(x) > 0.5 <=> x > 0
        losses = {
            "loss_dice": self.dice(logits[:, None], targets[:, None]),
            "loss_bce": F.binary_cross_entropy_with_logits(logits, targets),
            "loss_iou": F.mse_loss(iou_pred, iou_true),
        }
        return {name: value * self.weights[name] for name, value in losses.items()}
