"""Cross-entropy + soft Dice (+ optional soft clDice) for 2D and 3D segmentation, with ignored
pixels/voxels.

The values equal MONAI's ``DiceCELoss`` with the matching settings when nothing is ignored:
``softmax=True, to_onehot_y=True`` for K + 1 softmax channels, ``sigmoid=True`` for one sigmoid
logit (binary cross-entropy), ``squared_pred`` and ``include_background`` as given; the Dice is
computed per image and per channel and averaged over both, with smoothing on numerator and
denominator; the cross-entropy is averaged over pixels. MONAI has no ignore label, so padded or
unlabeled elements (``ignore_value``) are removed here from both terms.

The optional soft-clDice term (Shit et al., "clDice - a novel topology-preserving loss function
for tubular structure segmentation", CVPR 2021) compares soft skeletons of the prediction and the
ground truth: :func:`soft_skeleton` iterates a morphological opening built from min/max pooling
(erosion: the minimum over the 3-voxel cross, per axis; dilation: the maximum over the 3^d box),
as the authors' ``soft_skeleton.py``; :func:`soft_cldice_loss` is their ``soft_cldice``.
"""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTIVATIONS", "check_cldice_settings", "dice_ce_loss", "soft_cldice_loss",
           "soft_skeleton"]

ACTIVATIONS = ("softmax", "sigmoid")


def dice_ce_loss(logits: Tensor, target: Tensor, *, activation: str = "softmax",
                 ignore_value: int = 255, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 include_background: bool = True, squared_pred: bool = False,
                 smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, cldice_weight: float = 0.0,
                 cldice_iterations: int = 3) -> Dict[str, Tensor]:
    """Weighted cross-entropy, soft Dice and (``cldice_weight`` > 0) soft clDice losses.

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
        cldice_weight: weight of :func:`soft_cldice_loss` on the foreground channels (the
            sigmoid channel, or softmax channels 1..C-1); 0 leaves the term out.
        cldice_iterations: soft-skeleton iterations (at least the largest structure radius in
            voxels for a full skeleton).
    Returns:
        ``{"loss_ce": ce_weight * CE, "loss_dice": dice_weight * (1 - mean soft Dice)}`` and,
        with ``cldice_weight`` > 0, ``"loss_cldice": cldice_weight * soft clDice loss``; each a
        scalar; all 0 (with gradient) when every element is ignored.
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
    check_cldice_settings(cldice_weight, cldice_iterations)
    if not bool(valid.any()):
        zero = logits.sum() * 0.0
        names = ("loss_ce", "loss_dice") + (("loss_cldice",) if cldice_weight > 0 else ())
        return dict.fromkeys(names, zero)

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
    power = 2 if squared_pred else 1
    denominator = (probs ** power).sum(dim=axes) + (onehot ** power).sum(dim=axes)
    dice = 1.0 - (2.0 * intersection + smooth_nr) / (denominator + smooth_dr)  # [N, C]
    losses = {"loss_ce": ce_weight * ce, "loss_dice": dice_weight * dice.mean()}
    if cldice_weight > 0:  # foreground channels: the sigmoid one, or softmax 1..C-1
        fg_probs, fg_target = (probs, onehot) if sigmoid or not include_background \
            else (probs[:, 1:], onehot[:, 1:])
        losses["loss_cldice"] = cldice_weight * soft_cldice_loss(fg_probs, fg_target,
                                                                 cldice_iterations)
    return losses


def check_cldice_settings(weight: float, iterations: int) -> None:
    """Raise ``ValueError`` naming ``MODEL.SEGMENTOR.CLDICE_WEIGHT`` / ``CLDICE_ITERATIONS``
    when the weight is negative or the iteration count is below 1."""
    if weight < 0:
        raise ValueError(f"MODEL.SEGMENTOR.CLDICE_WEIGHT must be >= 0 (0 = off), got {weight}.")
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"MODEL.SEGMENTOR.CLDICE_ITERATIONS must be an int >= 1, got "
                         f"{iterations!r}.")


def _pool(x: Tensor, kernel: Sequence[int]) -> Tensor:
    """Max pooling of [N, C, *spatial] (2 or 3 axes) with stride 1 and the same output size
    (out-of-volume elements never win)."""
    pool = F.max_pool3d if x.dim() == 5 else F.max_pool2d
    return pool(x, tuple(kernel), stride=1, padding=tuple(k // 2 for k in kernel))


def _soft_erode(x: Tensor) -> Tensor:
    """Minimum over the cross of 3 elements along each axis (the centre and its 2d face
    neighbours)."""
    dims = x.dim() - 2
    eroded = [-_pool(-x, [3 if a == axis else 1 for a in range(dims)]) for axis in range(dims)]
    return torch.stack(eroded).amin(0)


def _soft_open(x: Tensor) -> Tensor:
    """Soft erosion followed by soft dilation (maximum over the 3^d box)."""
    return _pool(_soft_erode(x), [3] * (x.dim() - 2))


def soft_skeleton(x: Tensor, iterations: int) -> Tensor:
    """Soft skeleton of probability maps (Shit et al. 2021, Algorithm 1).

    ``skel = relu(x - open(x))``; then ``iterations`` times: ``x = erode(x)``,
    ``delta = relu(x - open(x))``, ``skel += relu(delta - skel * delta)``. On a binary map it
    is a (thick) morphological skeleton inside the foreground.

    Args:
        x: [N, C, *spatial] values in [0, 1], 2 or 3 spatial axes.
        iterations: erosion steps (>= the largest radius to be thinned, in elements).
    Returns:
        [N, C, *spatial] soft skeleton in [0, 1].
    """
    if x.dim() not in (4, 5):
        raise ValueError(f"soft_skeleton needs [N, C, H, W] or [N, C, X, Y, Z], got shape "
                         f"{tuple(x.shape)}.")
    skeleton = F.relu(x - _soft_open(x))
    for _ in range(iterations):
        x = _soft_erode(x)
        delta = F.relu(x - _soft_open(x))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def soft_cldice_loss(probs: Tensor, target: Tensor, iterations: int = 3,
                     smooth: float = 1.0) -> Tensor:
    """1 - soft clDice of foreground probabilities against a (one-hot) target.

    Topology precision ``Tprec = (sum(S(P) * G) + s) / (sum(S(P)) + s)``, topology sensitivity
    ``Tsens = (sum(S(G) * P) + s) / (sum(S(G)) + s)``, sums over the whole batch and every
    channel (as the authors' ``soft_cldice``); the loss is ``1 - 2 Tprec Tsens / (Tprec + Tsens)``.

    Args:
        probs: [N, C, *spatial] foreground probabilities P (no background channel).
        target: [N, C, *spatial] ground truth G in {0, 1} (or soft), same shape.
        iterations: :func:`soft_skeleton` iterations.
        smooth: ``s`` above.
    Returns:
        A scalar in [0, 1]; 0 when ``probs`` equals a binary ``target``.
    """
    if probs.shape != target.shape:
        raise ValueError(f"soft_cldice_loss: probs {tuple(probs.shape)} and target "
                         f"{tuple(target.shape)} differ in shape.")
    skel_pred, skel_true = soft_skeleton(probs, iterations), soft_skeleton(target, iterations)
    precision = ((skel_pred * target).sum() + smooth) / (skel_pred.sum() + smooth)
    sensitivity = ((skel_true * probs).sum() + smooth) / (skel_true.sum() + smooth)
    return 1.0 - 2.0 * precision * sensitivity / (precision + sensitivity)
