"""Loading Sparse R-CNN checkpoints, official ones included, with an explicit report.

vertspine's :class:`SparseRCNN` names its parameters as the official implementation does, so an
official checkpoint (e.g. ``r50_100pro_3x_model.pth``, a detectron2 checkpoint ``{"model": sd}``)
loads key for key. What cannot load is said, not just logged: tensors whose shape differs are
skipped (typically ``class_logits`` when the class count differs from COCO's 80), and the report
lists loaded, skipped, missing and unexpected keys. ``strict=True`` turns any of the last three
into an error.
"""
import logging
import os
from typing import Dict, Mapping, Union

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from vertspine.utils.checkpoint_report import CheckpointReport  # re-exported here

__all__ = ["CheckpointReport", "load_sparse_rcnn_checkpoint", "read_state_dict"]

logger = logging.getLogger(__name__)


def read_state_dict(path_or_state_dict: Union[str, os.PathLike, Mapping]) -> Dict[str, Tensor]:
    """The model state dict of a checkpoint file or object.

    Args:
        path_or_state_dict: a ``.pth`` file (read with ``torch.load(weights_only=True)`` on the
            CPU), a detectron2 checkpoint ``{"model": state_dict, ...}`` or a bare state dict.
            A ``module.`` prefix on every key (a DistributedDataParallel save) is removed.
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path_or_state_dict = torch.load(path_or_state_dict, map_location="cpu", weights_only=True)
    state = path_or_state_dict.get("model", path_or_state_dict)
    if not isinstance(state, Mapping):
        raise ValueError(f"The checkpoint's 'model' entry is a {type(state).__name__}, "
                         "not a state dict.")
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _skip_reason(key: str, saved: torch.Size, expected: torch.Size) -> str:
    shapes = f"checkpoint {list(saved)}, model {list(expected)}"
    if key.endswith(("class_logits.weight", "class_logits.bias")):
        return f"{shapes}: class count differs ({saved[0]} in the checkpoint, {expected[0]} here)"
    return shapes


def load_sparse_rcnn_checkpoint(
    model: nn.Module, path_or_state_dict: Union[str, os.PathLike, Mapping], *, strict: bool = False
) -> CheckpointReport:
    """Load a Sparse R-CNN checkpoint (official key layout) into ``model``.

    Args:
        model: a :class:`SparseRCNN` (or one wrapped in DistributedDataParallel).
        path_or_state_dict: see :func:`read_state_dict`.
        strict: raise instead of loading when any key would be skipped, missing or unexpected.
    Returns:
        The report; it is also logged (as a warning when incomplete).
    Raises:
        ValueError: with ``strict``, naming every offending key and its shapes.
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    checkpoint = read_state_dict(path_or_state_dict)
    expected = model.state_dict()
    report = CheckpointReport(title="Sparse R-CNN checkpoint")
    loadable = {}
    for key, value in checkpoint.items():
        if key not in expected:
            report.unexpected.append(key)
        elif value.shape != expected[key].shape:
            report.skipped[key] = _skip_reason(key, value.shape, expected[key].shape)
        else:
            loadable[key] = value
            report.loaded.append(key)
    report.missing = [key for key in expected if key not in checkpoint]
    if strict and not report.complete:
        raise ValueError(f"strict loading failed.\n{report}")
    model.load_state_dict(loadable, strict=False)
    logger.log(logging.INFO if report.complete else logging.WARNING, "%s", report)
    return report
