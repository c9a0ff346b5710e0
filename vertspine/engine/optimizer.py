"""Optimizer construction: SGD or AdamW, with detectron2's parameter groups and clipping.

``SOLVER.OPTIMIZER`` picks the optimizer. ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE`` accepts
detectron2's per-parameter "value" and "norm" and also "full_model": one gradient norm over all
parameters, clipped to ``CLIP_VALUE`` (the DETR / Sparse R-CNN recipe).
"""
from typing import Type

import torch
from detectron2.config import CfgNode
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

__all__ = ["build_optimizer", "with_full_model_clipping"]

_OPTIMIZERS = ("SGD", "ADAMW")


def with_full_model_clipping(
    optimizer_class: Type[torch.optim.Optimizer], max_norm: float, norm_type: float = 2.0
) -> Type[torch.optim.Optimizer]:
    """A subclass of ``optimizer_class`` whose ``step`` first clips the global gradient norm.

    Args:
        optimizer_class: e.g. ``torch.optim.AdamW``.
        max_norm: largest allowed norm of all gradients taken together.
        norm_type: the p of the p-norm.
    """

    def step(self, closure=None):
        params = [p for group in self.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        return optimizer_class.step(self, closure)

    return type(optimizer_class.__name__ + "WithFullModelClip", (optimizer_class,), {"step": step})


def _optimizer_class(cfg: CfgNode) -> Type[torch.optim.Optimizer]:
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name not in _OPTIMIZERS:
        raise ValueError(
            f"SOLVER.OPTIMIZER is {cfg.SOLVER.OPTIMIZER!r}; use one of {', '.join(_OPTIMIZERS)}."
        )
    optimizer_class = torch.optim.SGD if name == "SGD" else torch.optim.AdamW
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        return with_full_model_clipping(optimizer_class, clip.CLIP_VALUE, clip.NORM_TYPE)
    return maybe_add_gradient_clipping(cfg, optimizer_class)


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``SOLVER.OPTIMIZER`` over detectron2's parameter groups
    (no weight decay on norm layers when ``WEIGHT_DECAY_NORM`` is 0, bias lr factor)."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    optimizer_class = _optimizer_class(cfg)
    if issubclass(optimizer_class, torch.optim.SGD):
        kwargs = dict(momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
    else:
        kwargs = dict(betas=tuple(cfg.SOLVER.BETAS))
    return optimizer_class(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY, **kwargs
    )
