"""Uniform average of the weights of several checkpoints of one run (checkpoint averaging).

The after-the-fact counterpart of ``MODEL_EMA``: the periodic checkpoints of a run that has
ended (``model_0002099.pth``, ``model_0002399.pth``, ...) are averaged tensor by tensor into
one set of weights, evaluated like any ``MODEL.WEIGHTS``. Floating-point tensors are averaged
in float64 and cast back to their dtype; integer tensors (counters such as BatchNorm's
``num_batches_tracked``) are taken from the last checkpoint.
"""
from typing import Dict, Sequence

import torch

__all__ = ["average_checkpoints"]


def _read_model(path: str) -> Dict[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"Checkpoint {path!r} does not exist.") from None
    except Exception as error:
        raise ValueError(f"Checkpoint {path!r} cannot be read by torch.load ({error}); is it a "
                         "complete .pth file?") from error
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"Checkpoint {path!r} has no 'model' entry: it is not a detectron2/"
                         "vertspine training checkpoint.")
    return checkpoint["model"]


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
        ValueError: fewer than two paths, an unreadable file, or models that differ in keys
            or shapes (the message names both files).
        FileNotFoundError: a path that does not exist.
    """
    if len(paths) < 2:
        raise ValueError(f"Checkpoint averaging needs at least two checkpoints, got {list(paths)}.")
    reference = _read_model(paths[0])
    sums: Dict[str, torch.Tensor] = {
        name: tensor.double() for name, tensor in reference.items() if tensor.is_floating_point()
    }
    last = reference
    for path in paths[1:]:
        last = _read_model(path)
        _check_same_layout(reference, paths[0], last, path)
        for name in sums:
            sums[name] += last[name].double()
    return {
        name: (sums[name] / len(paths)).to(tensor.dtype) if name in sums else last[name]
        for name, tensor in reference.items()
    }
