"""Exponential moving average (EMA) of the model's weights, evaluated in place of the weights.

With ``MODEL_EMA.ENABLED``, after every optimizer step the trainer updates, for every
floating-point parameter and buffer, ``ema = MODEL_EMA.DECAY * ema + (1 - MODEL_EMA.DECAY) *
weight``. Integer buffers (token ids, batch counters) and tensors holding non-finite values
(attention masks of -inf) are copied, not averaged: torch's EMA function truncates the first
(49406 became 49405) and turns -inf into NaN (VertFound's CLIP text mask: every prediction of
the in-training average was NaN, IDR 0). The average is a
:class:`torch.optim.swa_utils.AveragedModel`; its first update copies the weights, so the
average starts from the loaded initialisation, not from the random one it was built with.
Training goes on from the raw weights; the periodic and final evaluations, and so the metric
``model_best.pth`` is chosen by, use the average.

Checkpoints hold both: ``model`` (the raw weights, for ``--resume``) and ``model_ema`` (the
:class:`AveragedModel` state: ``module.<parameter name>`` keys and ``n_averaged``).
:func:`averaged_weights` takes the model's weights out of ``model_ema`` for evaluation.
"""
from typing import Any, Callable, Dict, List, Optional

import torch
from detectron2.config import CfgNode
from detectron2.engine import HookBase
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["EMA_CHECKPOINT_KEY", "EMAUpdate", "averaged_weights", "build_model_ema", "ema_update"]

EMA_CHECKPOINT_KEY = "model_ema"


def build_model_ema(cfg: CfgNode, model: torch.nn.Module) -> Optional[AveragedModel]:
    """The averaged copy of ``model`` (not DDP-wrapped) when ``MODEL_EMA.ENABLED``, else None.

    Raises:
        ValueError: ``MODEL_EMA.DECAY`` is not in (0, 1).
    """
    if not cfg.MODEL_EMA.ENABLED:
        return None
    decay = cfg.MODEL_EMA.DECAY
    if not 0.0 < decay < 1.0:
        raise ValueError(f"MODEL_EMA.DECAY={decay} must be in (0, 1), e.g. 0.999 (an average "
                         "over about 1 / (1 - DECAY) iterations).")
    return AveragedModel(model, multi_avg_fn=ema_update(decay), use_buffers=True)


def ema_update(decay: float) -> Callable[[List[torch.Tensor], List[torch.Tensor], Any], None]:
    """AveragedModel's ``multi_avg_fn``: torch's EMA for finite floating-point tensors, a copy
    for integer tensors and tensors holding inf/NaN (AveragedModel calls it once per device and
    dtype group)."""
    average = get_ema_multi_avg_fn(decay)

    def update(averaged: List[torch.Tensor], current: List[torch.Tensor], num_averaged) -> None:
        floating = bool(averaged) and (averaged[0].is_floating_point() or averaged[0].is_complex())
        targets, sources = [], []
        for target, source in zip(averaged, current):
            if floating and bool(torch.isfinite(source).all()):
                targets.append(target)
                sources.append(source)
            else:
                target.copy_(source)
        if targets:
            average(targets, sources, num_averaged)

    return update


class EMAUpdate(HookBase):
    """After every iteration, fold the model's current weights into the moving average, and
    tell the average's modules that keep values derived from their weights (a ``mark_stale()``
    method, e.g. VertFound's text embeddings) to recompute them.

    Register it before the checkpointer and the evaluation hooks, so that both see the average
    of the iteration that just ended.
    """

    def __init__(self, model_ema: AveragedModel, model: torch.nn.Module):
        """
        Args:
            model_ema: from :func:`build_model_ema`.
            model: the trained model, unwrapped from DDP (all ranks hold the same weights).
        """
        self._model_ema = model_ema
        self._model = model

    def after_step(self):
        self._model_ema.update_parameters(self._model)
        for module in self._model_ema.modules():  # caches derived from the averaged weights
            if hasattr(module, "mark_stale"):
                module.mark_stale()


def averaged_weights(checkpoint: Dict[str, Any], filename: str) -> Dict[str, torch.Tensor]:
    """The model state dict held in a checkpoint's ``model_ema`` entry.

    Args:
        checkpoint: a loaded vertspine checkpoint.
        filename: where it was read from, for the error message.
    Raises:
        KeyError: the checkpoint has no ``model_ema`` (it was trained without MODEL_EMA.ENABLED).
    """
    if EMA_CHECKPOINT_KEY not in checkpoint:
        raise KeyError(
            f"{filename} has no averaged weights ('{EMA_CHECKPOINT_KEY}'; its entries: "
            f"{sorted(checkpoint)}), but MODEL_EMA.ENABLED is True, which evaluates them. "
            "Evaluate its raw weights with MODEL_EMA.ENABLED False, or use a checkpoint of a "
            "run trained with MODEL_EMA.ENABLED True.")
    state = checkpoint[EMA_CHECKPOINT_KEY]
    prefix = "module."
    return {name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)}
