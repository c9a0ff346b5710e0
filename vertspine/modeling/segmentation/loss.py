"""Cross-entropy + soft Dice for 2D and 3D segmentation, with ignored pixels/voxels.

The values equal MONAI's ``DiceCELoss`` with the matching settings when nothing is ignored:
``softmax=True, to_onehot_y=True`` for K + 1 softmax channels, ``sigmoid=True`` for one sigmoid
logit (binary cross-entropy), ``squared_pred`` and ``include_background`` as given; the Dice is
computed per image and per channel and averaged over both, with smoothing on numerator and
denominator; the cross-entropy is averaged over pixels. MONAI has no ignore label, so padded or
unlabeled elements (``ignore_value``) are removed here from both terms.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTIVATIONS", "dice_ce_loss"]

ACTIVATIONS = ("softmax", "sigmoid")


def dice_ce_loss(logits: Tensor, target: Tensor, *, activation: str = "softmax",
                 ignore_value: int = 255, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 include_background: bool = True, squared_pred: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5) -> Dict[str, Tensor]:
    """Weighted cross-entropy and soft Dice losses.

    Args:
        logits: [N, C, *spatial] scores (2 or 3 spatial axes). ``activation`` "softmax":
            C = K + 1 classes, channel 0 background; "sigmoid": C = 1, the foreground logit.
        target: [N, *spatial] int64 labels in 0..K (0..1 for "sigmoid"), or ``ignore_value``
            for elements left out.
        activation: "softmax" (cross-entropy over C channels) or "sigmoid" (binary
            cross-entropy on the single channel).
        ignore_value: label of ignored elements (padding, unlabeled).
        ce_weight, dice_weight: weights of the two terms.
        include_background: average the softmax Dice over all C channels (True) or over 1..C-1;
            a sigmoid output has only the foreground channel.
        squared_pred: Dice denominator ``sum(p**2) + sum(g**2)`` (MONAI ``squared_pred``)
            instead of ``sum(p) + sum(g)``.
        smooth_nr, smooth_dr: added to the Dice numerator and denominator.
    Returns:
        ``{"loss_ce": ce_weight * CE, "loss_dice": dice_weight * (1 - mean soft Dice)}``,
        each a scalar; both 0 (with gradient) when every element is ignored.
    Raises:
        ValueError: unknown ``activation``, C is not 1 with "sigmoid", or a label is neither a
            class nor ``ignore_value``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"MODEL.SEGMENTOR.ACTIVATION '{activation}' is not one of {ACTIVATIONS}.")
    sigmoid = activation == "sigmoid"
    if sigmoid and logits.shape[1] != 1:
        raise ValueError(f"A sigmoid output has one channel (MODEL.SEGMENTOR.NUM_CLASSES 1); "
                         f"the logits have {logits.shape[1]}.")
    num_labels = 2 if sigmoid else logits.shape[1]
    valid = target != ignore_value
    labels = target[valid]
    if bool((labels >= num_labels).any()) or bool((labels < 0).any()):
        bad = sorted(set(labels.unique().tolist()) - set(range(num_labels)))
        raise ValueError(
            f"Segmentation labels {bad} are outside 0..{num_labels - 1}: the model predicts "
            f"{num_labels - 1} foreground class(es) (MODEL.SEGMENTOR.NUM_CLASSES = "
            f"{num_labels - 1}). Set NUM_CLASSES to the dataset's class count.")
    if not bool(valid.any()):
        zero = logits.sum() * 0.0
        return {"loss_ce": zero, "loss_dice": zero}

    mask = valid.unsqueeze(1).to(logits.dtype)  # [N, 1, *spatial]
    if sigmoid:
        onehot = target.unsqueeze(1).to(logits.dtype) * mask
        ce = F.binary_cross_entropy_with_logits(logits, onehot, weight=mask, reduction="sum")
        ce = ce / mask.sum()
        probs = logits.sigmoid() * mask
    else:
        ce = F.cross_entropy(logits, target, ignore_index=ignore_value)
        probs = logits.softmax(dim=1) * mask
        onehot = F.one_hot(torch.where(valid, target, 0), num_labels).movedim(-1, 1)
        onehot = onehot.to(logits.dtype) * mask
        if not include_background:
            probs, onehot = probs[:, 1:], onehot[:, 1:]
    axes = tuple(range(2, logits.dim()))
    intersection = (probs * onehot).sum(dim=axes)
    if squared_pred:
        probs, onehot = probs * probs, onehot * onehot
    denominator = probs.sum(dim=axes) + onehot.sum(dim=axes)
    dice = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)  # [N, C]
    return {"loss_ce": ce_weight * ce, "loss_dice": dice_weight * dice.mean()}
