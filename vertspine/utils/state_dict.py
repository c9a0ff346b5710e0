"""One reader for every checkpoint file: file (or object) -> ``{name: tensor}`` on the CPU.

Every weight loader of every family reads through :func:`read_state_dict`, so a checkpoint is
unwrapped the same way everywhere and every failure names the file:

- containers: a bare state dict, detectron2's ``{"model": sd, ...}``, Lightning's and
  open_clip's ``{"state_dict": sd, ...}`` (unwrapped in that order);
- TorchScript archives (OpenAI CLIP's ``ViT-B-32.pt``): their ``state_dict()``;
- a ``module.`` prefix on every key (a DistributedDataParallel save) is removed;
- non-tensor entries (OpenAI's ``input_resolution`` / ``context_length`` / ``vocab_size`` ints)
  are dropped;
- files are read with ``torch.load(weights_only=True)``; a file that needs full unpickling is
  an error unless the caller trusts it (``trust_pickle=True``).
"""
import os
import warnings
import zipfile
from typing import Dict, Mapping, Optional, Union

import torch
from torch import Tensor

__all__ = ["CheckpointReadError", "StateDictSource", "read_state_dict"]

StateDictSource = Union[str, "os.PathLike[str]", Mapping]
_WRAPPERS = ("model", "state_dict")


class CheckpointReadError(ValueError):
    """A checkpoint file exists but is not a readable state dict; the message names the file."""


def read_state_dict(source: StateDictSource, *, trust_pickle: bool = False,
                    missing_hint: str = "", entry: Optional[str] = None) -> Dict[str, Tensor]:
    """The state dict of a checkpoint file or object, unwrapped (see the module docstring).

    Args:
        source: a checkpoint path, or an already loaded checkpoint / state dict.
        trust_pickle: read with full unpickling (only for files you trust).
        missing_hint: appended to the error when the file does not exist (which key to set,
            which command downloads it).
        entry: the container entry that must hold the state dict (``"model"``: a detectron2 /
            vertspine training checkpoint); None unwraps whichever container it is.
    Returns:
        ``{key: tensor}`` with CPU tensors.
    Raises:
        FileNotFoundError: ``source`` names no file.
        CheckpointReadError: a directory, a truncated/corrupt file, a file that needs full
            unpickling without ``trust_pickle``, one without ``entry``, or one that holds no
            tensors.
    """
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the checkpoint object"
    state = _load(where, trust_pickle, missing_hint) if isinstance(source, (str, os.PathLike)) \
        else source
    if entry is not None:
        if not (isinstance(state, Mapping) and isinstance(state.get(entry), Mapping)):
            found = sorted(map(str, state))[:8] if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointReadError(f"{where} has no {entry!r} entry (it holds {found}): it is "
                                      "not the kind of checkpoint expected here.")
        state = state[entry]
    else:
        for wrapper in _WRAPPERS:
            if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
    if not isinstance(state, Mapping):
        raise CheckpointReadError(f"{where} holds a {type(state).__name__}, not a state dict.")
    tensors = {key: value for key, value in state.items() if isinstance(value, Tensor)}
    if not tensors:
        raise CheckpointReadError(
            f"{where} holds no tensors (entries: {sorted(map(str, state))[:8]}): it is not a "
            "model checkpoint.")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return tensors


def _load(path: str, trust_pickle: bool, missing_hint: str):
    if os.path.isdir(path):
        raise CheckpointReadError(f"{path} is a directory, not a checkpoint file; name the "
                                  ".pth/.pt file inside it.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint {path} does not exist. {missing_hint}".strip())
    if _is_torchscript(path):
        with warnings.catch_warnings():  # torch 2.x flags torch.jit as deprecated
            warnings.simplefilter("ignore", FutureWarning)
            try:
                return dict(torch.jit.load(path, map_location="cpu").state_dict())
            except Exception as e:
                raise CheckpointReadError(f"{path}: a TorchScript archive that cannot be loaded "
                                          f"({_first_line(e)}).") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        if not trust_pickle and "weights_only" in str(e) and zipfile.is_zipfile(path):
            raise CheckpointReadError(
                f"{path} could not be read with weights_only=True ({_first_line(e)}). If you "
                "trust the file, load it with trust_pickle=True.") from e
        raise CheckpointReadError(
            f"{path} is not a readable PyTorch checkpoint ({type(e).__name__}: {_first_line(e)}): "
            "it is truncated, corrupt or another kind of file. Copy or download it again.") from e


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
