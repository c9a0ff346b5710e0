"""Uniform average of the weights of several checkpoints of one run (checkpoint averaging).

The after-the-fact counterpart of ``MODEL_EMA``: the periodic checkpoints of a run that has
ended (``model_0002099.pth``, ``model_0002399.pth``, ...) are averaged tensor by tensor into
one set of weights, evaluated like any ``MODEL.WEIGHTS``. Floating-point tensors are averaged
in float64 and cast back to their dtype; integer tensors (counters such as BatchNorm's
``num_batches_tracked``) are taken from the last checkpoint. Files are read by
:func:`vertspine.utils.state_dict.read_state_dict` (``weights_only``; the ``model`` entry).
"""
from typing import Dict, Sequence

import torch

from vertspine.utils.state_dict import non_finite_tensors, read_state_dict

__all__ = ["average_checkpoints"]


def _read_finite(path: str) -> Dict[str, torch.Tensor]:
    """The ``model`` entry of ``path``; ValueError naming the file and tensors when any holds
    NaN or infinity (a diverged checkpoint would make the average non-finite or meaningless)."""
    state = read_state_dict(path, entry="model")
    bad = non_finite_tensors(state)
    if bad:
        raise ValueError(
            f"{path!r}: tensor {bad[0]!r} holds NaN or infinite values ({len(bad)} such tensors: "
            f"{bad[:5]}): training had diverged when it was saved. Leave this checkpoint out of "
            "the average (average earlier ones).")
    return state


def _check_same_layout(reference: Dict[str, torch.Tensor], reference_path: str,
                       state: Dict[str, torch.Tensor], path: str) -> None:
    only_reference, only_state = sorted(set(reference) - set(state)), sorted(set(state) - set(reference))
    if only_reference or only_state:
        raise ValueError(
            f"{path!r} and {reference_path!r} hold different parameters (only in the first: "
            f"{only_state[:5]}, only in the second: {only_reference[:5]}): average checkpoints "
            "of one run (one config).")
    for name, tensor in reference.items():
        if tensor.shape != state[name].shape:
            raise ValueError(f"{name!r} has shape {tuple(state[name].shape)} in {path!r} but "
                             f"{tuple(tensor.shape)} in {reference_path!r}: average checkpoints "
                             "of one run (one config).")


def average_checkpoints(paths: Sequence[str]) -> Dict[str, torch.Tensor]:
    """The tensor-wise mean of the ``model`` entries of ``paths``.

    Args:
        paths: two or more checkpoints of the same model.
    Returns:
        A state dict with the keys, shapes and dtypes of the checkpoints' models.
    Raises:
        ValueError: fewer than two paths, models that differ in keys or shapes (the message
            names both files), a tensor holding NaN or infinity (naming file and tensor), or a
            file that is not a training checkpoint (unreadable, or
            without a ``model`` entry: :class:`~vertspine.utils.state_dict.CheckpointReadError`,
            naming the file).
        FileNotFoundError: a path that does not exist.
    """
    if len(paths) < 2:
        raise ValueError(f"Checkpoint averaging needs at least two checkpoints, got {list(paths)}.")
    reference = _read_finite(paths[0])
    sums: Dict[str, torch.Tensor] = {
        name: tensor.double() for name, tensor in reference.items() if tensor.is_floating_point()
    }
    last = reference
    for path in paths[1:]:
        last = _read_finite(path)
        _check_same_layout(reference, paths[0], last, path)
        for name in sums:
            sums[name] += last[name].double()
    return {
        name: (sums[name] / len(paths)).to(tensor.dtype) if name in sums else last[name]
        for name, tensor in reference.items()
    }
