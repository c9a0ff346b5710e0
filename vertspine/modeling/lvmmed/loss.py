"""Cross-entropy + soft Dice for semantic segmentation, with ignored pixels.

The LVM-Med segmentation loss (CE + soft Dice). The values equal MONAI's
``DiceCELoss(softmax=True, to_onehot_y=True)`` (per-image, per-class Dice averaged over both;
smoothing 1e-5 on numerator and denominator; CE averaged over pixels) when no pixel is ignored;
MONAI has no ignore label, so padded / unlabeled pixels (``ignore_value``) are removed here from
both terms.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["dice_ce_loss"]


def dice_ce_loss(logits: Tensor, target: Tensor, *, ignore_value: int = 255,
                 ce_weight: float = 1.0, dice_weight: float = 1.0,
                 include_background: bool = True, smooth_nr: float = 1e-5,
                 smooth_dr: float = 1e-5) -> Dict[str, Tensor]:
    """Weighted cross-entropy and soft Dice losses.

    Args:
        logits: [N, C, H, W] class scores (C = K + 1, channel 0 background).
        target: [N, H, W] int64 labels in 0..C-1, or ``ignore_value`` for pixels left out.
        ignore_value: label of ignored pixels (padding, unlabeled).
        ce_weight, dice_weight: weights of the two terms.
        include_background: average the Dice over all C channels (True) or over 1..C-1.
        smooth_nr, smooth_dr: added to the Dice numerator and denominator.
    Returns:
        ``{"loss_ce": ce_weight * CE, "loss_dice": dice_weight * (1 - mean soft Dice)}``,
        each a scalar; both 0 (with gradient) when every pixel is ignored.
    Raises:
        ValueError: a label is neither in 0..C-1 nor ``ignore_value``.
    """
    num_channels = logits.shape[1]
    valid = target != ignore_value
    if bool((target[valid] >= num_channels).any()) or bool((target[valid] < 0).any()):
        bad = sorted(set(target[valid].unique().tolist()) - set(range(num_channels)))
        raise ValueError(
            f"Segmentation labels {bad} are outside 0..{num_channels - 1}: the model predicts "
            f"{num_channels} channels (MODEL.LVMMED.UNET.NUM_CLASSES = {num_channels - 1} "
            "foreground classes + background). Set NUM_CLASSES to the dataset's class count.")
    if not bool(valid.any()):
        zero = logits.sum() * 0.0
        return {"loss_ce": zero, "loss_dice": zero}
    ce = F.cross_entropy(logits, target, ignore_index=ignore_value)

    mask = valid.unsqueeze(1).to(logits.dtype)  # [N, 1, H, W]
    probs = logits.softmax(dim=1) * mask
    onehot = F.one_hot(torch.where(valid, target, 0), num_channels).permute(0, 3, 1, 2)
    onehot = onehot.to(logits.dtype) * mask
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    intersection = (probs * onehot).sum(dim=(2, 3))
    denominator = probs.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    dice = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)  # [N, C]
    return {"loss_ce": ce_weight * ce, "loss_dice": dice_weight * dice.mean()}
