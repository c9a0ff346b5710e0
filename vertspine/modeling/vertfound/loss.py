"""VertFound's training losses: focal classification, optimal-transport alignment, ordering.

- Focal: torchvision's sigmoid focal loss on one-hot levels, summed and divided by the number of
  real boxes (padded slots excluded).
- OT alignment (the paper's Wasserstein loss), target "sets": per image, the entropic optimal
  transport between the image's boxes (uniform mass) and its ground-truth levels (their
  histogram), with cost ``C = 1 - cos(box feature, level text embedding)``, solved by a
  log-domain Sinkhorn run until its row marginals are within a relative ``tolerance`` (at most
  ``iters`` iterations; a warning, at most once a minute, when that is not enough). The loss is the entropic objective
  ``W_eps(C) = <T, C> + eps * sum T log T`` at the plan T, computed with T detached: by the
  envelope theorem dW_eps/dC = T, so autograd gives the exact gradient of the value it reports.
  (It is not the gradient of the transport cost <T, C> alone, which also moves with T.) Like
  the original, this aligns the *set* of boxes with the *set* of levels without using which box
  has which level. Target "assignment" uses that knowledge instead: each box's mass goes to its
  own ground-truth level, the loss is ``mean over boxes of 1 - cos(feature, text[label])``.
  Replaces the released exp(100 <T, C>) on a plain Sinkhorn (weak point 4 of the spec).
- Ordering: with boxes sorted top to bottom, the expected level E[l] = sum_k k softmax_k of a
  box should exceed its upper neighbour's by the ground-truth step ("gt_step", smooth-L1) or by
  at least a margin ("hinge"). Differentiable, unlike the released argmax-based loss.
"""
import logging
from typing import Optional

import torch
import torch.nn.functional as F
from detectron2.utils.logger import log_every_n_seconds
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

__all__ = [
    "OT_TARGETS",
    "entropic_ot_objective",
    "focal_loss",
    "log_sinkhorn",
    "ordering_loss",
    "ot_alignment_loss",
    "sinkhorn",
]

ORDER_MODES = ("gt_step", "hinge")
OT_TARGETS = ("sets", "assignment")


def focal_loss(logits: Tensor, labels: Tensor, valid: Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> Tensor:
    """Sigmoid focal loss over real boxes.

    Args:
        logits: [B, N, K]. labels: [B, N] int64 levels. valid: [B, N] bool.
    Returns:
        scalar: summed loss / max(1, number of real boxes).
    """
    target = F.one_hot(labels.clamp(min=0), logits.shape[-1]).to(logits.dtype)
    loss = sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="none")
    return (loss.sum(-1) * valid).sum() / valid.sum().clamp(min=1)


def log_sinkhorn(cost: Tensor, log_a: Tensor, log_b: Tensor, epsilon: float, iters: int,
                 tolerance: float = 0.0) -> Tensor:
    """Entropic OT plan by Sinkhorn iterations on log-potentials (stable for small epsilon).

    Args:
        cost: [B, N, K] transport costs.
        log_a: [B, N] log source masses (-inf where a slot has no mass).
        log_b: [B, K] log target masses (-inf where none). Each row of a and b sums to 1.
        epsilon: entropy regularisation.
        iters: the most iterations (each updates both potentials).
        tolerance: stop once every row sum is within this relative error of its mass
            (``max |T 1 - a| / a``; column sums are exact after each iteration); 0 runs all
            ``iters``. A warning says when ``iters`` ran out first.
    Returns:
        [B, N, K] plan T = exp((f_i + g_k - C_ik) / epsilon); columns sum to b, rows to a within
        ``tolerance`` (or as far as ``iters`` got).
    """
    f = torch.zeros_like(log_a)
    g = torch.zeros_like(log_b)
    scaled = -cost / epsilon
    has_mass = torch.isfinite(log_a)
    for _ in range(iters):
        f = epsilon * (log_a - torch.logsumexp(scaled + g[:, None, :] / epsilon, dim=2))
        f = torch.where(has_mass, f, torch.full_like(f, float("-inf")))
        g = epsilon * (log_b - torch.logsumexp(scaled + f[:, :, None] / epsilon, dim=1))
        g = torch.where(torch.isfinite(log_b), g, torch.full_like(g, float("-inf")))
        if tolerance > 0 and _row_error(scaled, f, g, epsilon, log_a, has_mass) <= tolerance:
            break
    else:
        if tolerance > 0:  # at most once a minute: training calls this every iteration
            log_every_n_seconds(
                logging.WARNING, f"Sinkhorn stopped after {iters} iterations with row sums "
                f"{_row_error(scaled, f, g, epsilon, log_a, has_mass):.3g} (relative) from their "
                f"masses, above the tolerance {tolerance:g}; raise "
                "MODEL.VERTFOUND.LOSS.OT_ITERS, OT_TOLERANCE or OT_EPSILON.", n=60,
                name=__name__)
    return torch.exp(scaled + (f[:, :, None] + g[:, None, :]) / epsilon)


def _row_error(scaled: Tensor, f: Tensor, g: Tensor, epsilon: float, log_a: Tensor,
               has_mass: Tensor) -> float:
    """max over slots with mass of |row sum of the plan / a - 1|."""
    log_rows = torch.logsumexp(scaled + (f[:, :, None] + g[:, None, :]) / epsilon, dim=2)
    return float((torch.exp(log_rows - log_a) - 1).abs()[has_mass].max())


def sinkhorn(cost: Tensor, a: Tensor, b: Tensor, epsilon: float, iters: int) -> Tensor:
    """Plain (Cuturi 2013) Sinkhorn with kernel exp(-C / epsilon); a reference for tests, it
    underflows for small epsilon. Shapes as :func:`log_sinkhorn` with masses ``a``, ``b``."""
    kernel = torch.exp(-cost / epsilon)
    v = torch.ones_like(b)
    for _ in range(iters):
        u = a / (kernel @ v[..., None])[..., 0]
        v = b / (kernel.transpose(1, 2) @ u[..., None])[..., 0]
    return u[:, :, None] * kernel * v[:, None, :]


def entropic_ot_objective(cost: Tensor, a: Tensor, b: Tensor, epsilon: float, iters: int,
                          tolerance: float) -> Tensor:
    """``W_eps(C) = <T, C> + eps * sum T log T`` per problem, T the entropic plan (detached).

    Its autograd gradient in ``cost`` is T, the exact gradient of W_eps (envelope theorem) once
    Sinkhorn has converged. Shapes as :func:`log_sinkhorn`; returns [B].
    """
    with torch.no_grad():
        plan = log_sinkhorn(cost.float(), a.log(), b.log(), epsilon, iters, tolerance)
        plan = plan.to(cost.dtype)
        negative_entropy = torch.special.xlogy(plan, plan).sum(dim=(1, 2))
    return (plan * cost).sum(dim=(1, 2)) + epsilon * negative_entropy


def ot_alignment_loss(features: Tensor, text: Tensor, labels: Tensor, valid: Tensor,
                      epsilon: float = 0.05, iters: int = 1000, tolerance: float = 1e-2,
                      target: str = "sets") -> Tensor:
    """Box-level alignment of features with the level text embeddings (module docstring).

    Args:
        features: [B, N, D] box features. text: [K, D] level embeddings (unit rows).
        labels: [B, N] int64 levels. valid: [B, N] bool.
        epsilon, iters, tolerance: Sinkhorn settings (target "sets"), see :func:`log_sinkhorn`.
        target: "sets" (entropic Wasserstein between the set of boxes and the histogram of
            levels) or "assignment" (each box to its own level).
    Returns:
        scalar: mean over images with boxes of W_eps ("sets") or of the mean box cost
        ``1 - cos(feature, text[label])`` ("assignment").
    """
    if target not in OT_TARGETS:
        raise ValueError(f"OT target {target!r} is not one of {OT_TARGETS} "
                         "(MODEL.VERTFOUND.LOSS.OT_TARGET).")
    has_boxes = valid.any(dim=1)
    if not has_boxes.any():
        return features.sum() * 0.0
    features, labels, valid = features[has_boxes], labels[has_boxes], valid[has_boxes]
    cost = 1.0 - F.normalize(features, dim=-1) @ text.t()
    counts = valid.sum(dim=1, keepdim=True)
    a = valid / counts
    onehot = F.one_hot(labels.clamp(min=0), text.shape[0]) * valid[..., None]
    if target == "assignment":
        return (onehot * a[..., None] * cost).sum(dim=(1, 2)).mean()
    b = onehot.sum(dim=1) / counts
    return entropic_ot_objective(cost, a, b, epsilon, iters, tolerance).mean()


def ordering_loss(logits: Tensor, centers_y: Tensor, valid: Tensor,
                  labels: Optional[Tensor] = None, mode: str = "gt_step",
                  margin: float = 1.0) -> Tensor:
    """Expected levels of top-to-bottom neighbours should step like the ground truth.

    Args:
        logits: [B, N, K]. centers_y: [B, N] box centre rows. valid: [B, N] bool.
        labels: [B, N] int64 levels (needed by "gt_step").
        mode: "gt_step" (smooth-L1 of the expected step to the true step) or "hinge"
            (relu(margin - expected step)).
    Returns:
        scalar: mean over neighbour pairs (0 with a gradient path when there are none).
    """
    if mode not in ORDER_MODES:
        raise ValueError(f"MODEL.VERTFOUND.LOSS.ORDER_MODE is {mode!r}; use one of {ORDER_MODES}.")
    levels = torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype)
    expected = logits.softmax(dim=-1) @ levels
    key = torch.where(valid, centers_y, torch.full_like(centers_y, float("inf")))
    order = key.argsort(dim=1)
    expected = expected.gather(1, order)
    valid_sorted = valid.gather(1, order)
    pair = valid_sorted[:, 1:] & valid_sorted[:, :-1]
    step = expected[:, 1:] - expected[:, :-1]
    if mode == "gt_step":
        sorted_labels = labels.gather(1, order).to(logits.dtype)
        target = sorted_labels[:, 1:] - sorted_labels[:, :-1]
        loss = F.smooth_l1_loss(step, target, reduction="none")
    else:
        loss = F.relu(margin - step)
    return (loss * pair).sum() / pair.sum().clamp(min=1)
