"""Optimizer construction: SGD or AdamW, with detectron2's parameter groups and clipping.

``SOLVER.OPTIMIZER`` picks the optimizer. ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE`` accepts
detectron2's per-parameter "value" and "norm" and also "full_model": one gradient norm over all
parameters, clipped to ``CLIP_VALUE`` (the DETR / Sparse R-CNN recipe).
``SOLVER.BACKBONE_MULTIPLIER`` scales the learning rate of ``model.backbone``'s parameters (as the
official Sparse R-CNN's key of that name).
"""
from typing import Any, Dict, List, Type

import torch
from detectron2.config import CfgNode
from detectron2.solver import get_default_optimizer_params
from detectron2.solver.build import maybe_add_gradient_clipping

__all__ = ["build_optimizer", "scale_backbone_lr", "with_full_model_clipping"]

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


def scale_backbone_lr(
    groups: List[Dict[str, Any]], model: torch.nn.Module, multiplier: float
) -> List[Dict[str, Any]]:
    """Split each parameter group into its ``model.backbone`` and other parameters and multiply
    the backbone part's ``lr`` by ``multiplier``.

    Raises:
        ValueError: ``multiplier`` is not 1 and ``model`` has no ``backbone`` attribute.
    """
    if multiplier == 1.0:
        return groups
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, torch.nn.Module):
        raise ValueError(
            f"SOLVER.BACKBONE_MULTIPLIER is {multiplier} but {type(model).__name__} has no "
            "`backbone` module; set SOLVER.BACKBONE_MULTIPLIER 1.0."
        )
    backbone_params = set(backbone.parameters())
    scaled: List[Dict[str, Any]] = []
    for group in groups:
        inside = [p for p in group["params"] if p in backbone_params]
        outside = [p for p in group["params"] if p not in backbone_params]
        if inside:
            scaled.append({**group, "params": inside, "lr": group["lr"] * multiplier})
        if outside:
            scaled.append({**group, "params": outside})
    return scaled


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``SOLVER.OPTIMIZER`` over detectron2's parameter groups
    (no weight decay on norm layers when ``WEIGHT_DECAY_NORM`` is 0, bias lr factor), the
    backbone's learning rate scaled by ``SOLVER.BACKBONE_MULTIPLIER``."""
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    params = scale_backbone_lr(params, model, cfg.SOLVER.BACKBONE_MULTIPLIER)
    optimizer_class = _optimizer_class(cfg)
    if issubclass(optimizer_class, torch.optim.SGD):
        kwargs = dict(momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
    else:
        kwargs = dict(betas=tuple(cfg.SOLVER.BETAS))
    return optimizer_class(
        params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY, **kwargs
    )
