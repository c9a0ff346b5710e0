"""Loading Sparse R-CNN checkpoints, official ones included, with an explicit report.

vertspine's :class:`SparseRCNN` names its parameters as the official implementation does, so an
official checkpoint (e.g. ``r50_100pro_3x_model.pth``, a detectron2 checkpoint ``{"model": sd}``)
loads key for key. What cannot load is said, not just logged: tensors whose shape differs are
skipped (typically ``class_logits`` when the class count differs from COCO's 80), and the report
lists loaded, skipped, missing and unexpected keys. ``strict=True`` turns any of the last three
into an error, before anything is loaded. Files are read by
:func:`vertspine.utils.state_dict.read_state_dict`; keys are matched by
:func:`vertspine.layers.weights.match_state_dict`.
"""
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vertspine.layers.weights import finish_loading, match_state_dict
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

__all__ = ["load_sparse_rcnn_checkpoint"]

_CLASS_KEYS = ("class_logits.weight", "class_logits.bias")


def load_sparse_rcnn_checkpoint(model: nn.Module, path_or_state_dict: StateDictSource, *,
                                strict: bool = False) -> CheckpointReport:
    """Load a Sparse R-CNN checkpoint (official key layout) into ``model``.

    Args:
        model: a :class:`SparseRCNN` (or one wrapped in DistributedDataParallel).
        path_or_state_dict: a ``.pth`` file, a detectron2 checkpoint ``{"model": sd, ...}`` or a
            bare state dict; a ``module.`` prefix on every key is removed (see
            :func:`~vertspine.utils.state_dict.read_state_dict`).
        strict: raise instead of loading when any key would be skipped, missing or unexpected.
    Returns:
        The report; it is also logged (as a warning when incomplete).
    Raises:
        ValueError: with ``strict``, naming every offending key and its shapes.
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    state = read_state_dict(path_or_state_dict)
    report, load = match_state_dict(model, state, "Sparse R-CNN checkpoint")
    expected = model.state_dict()
    for key in [k for k in report.skipped if k.endswith(_CLASS_KEYS)]:
        report.skipped[key] += (f": class count differs ({state[key].shape[0]} in the checkpoint, "
                                f"{expected[key].shape[0]} here)")
    return finish_loading(report, strict, [load])
