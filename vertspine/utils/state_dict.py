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
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from torch import Tensor

__all__ = [
    "CheckpointReadError", "StateDictSource", "load_checkpoint_file", "non_finite_tensors",
    "not_a_checkpoint", "read_state_dict", "unreadable_checkpoint_error",
]

StateDictSource = Union[str, "os.PathLike[str]", Mapping]
_WRAPPERS = ("model", "state_dict")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # what torch.save's legacy format and .pkl files begin with


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
    if isinstance(source, (str, os.PathLike)):
        state = load_checkpoint_file(where, trust_pickle, missing_hint)
    else:
        state = source
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


def load_checkpoint_file(path: str, trust_pickle: bool = False, missing_hint: str = ""):
    """The object a checkpoint file holds (TorchScript archives: their state dict), on the CPU.

    Args:
        path: the file.
        trust_pickle: read with full unpickling (only for files you trust).
        missing_hint: appended to the error when the file does not exist.
    Raises:
        FileNotFoundError: ``path`` names nothing.
        CheckpointReadError: a directory, or a file that is not a readable checkpoint (the
            message names the file and what it is instead: truncated, text, unknown bytes).
    """
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
    except Exception as e:  # UnpicklingError, RuntimeError (zip), EOFError, KeyError, ...
        raise unreadable_checkpoint_error(path, e, trust_pickle)


def not_a_checkpoint(path: str) -> Optional[str]:
    """What the file at ``path`` is when it cannot be a checkpoint, judged from its bytes
    without unpickling anything; None when it may be one: a zip archive, or a pickle (protocol
    2+ begins with 0x80; protocols 0 and 1 end with the STOP opcode ".").

    Examples: "an empty file", "a zip archive cut short (its end is missing)", "a text file
    beginning 'hello'", "4096 bytes of unrecognised data".
    """
    size = os.path.getsize(path)
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(256)
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
    if zipfile.is_zipfile(path) or head.startswith(_PICKLE_PROTOCOL_2_PLUS) or last == b".":
        return None
    if head.startswith(_ZIP_MAGIC):
        return ("a zip archive cut short (its end is missing: an interrupted copy, download or "
                "save)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return f"a text file beginning {text.strip()[:40]!r}"
    return f"{size} bytes of unrecognised data"


def unreadable_checkpoint_error(path: str, error: BaseException,
                                trust_pickle: bool = False) -> CheckpointReadError:
    """The error to raise for a checkpoint file that failed to load with ``error``: it names
    the file and what it is. When the bytes show what it is (text, a cut zip, ...), the
    loader's own message, whose advice would mislead, is left out of the traceback; otherwise
    ``error`` is kept as the cause. Raise it as is (``raise unreadable_checkpoint_error(...)``)."""
    what = not_a_checkpoint(path)
    if what is None and not trust_pickle and "weights_only" in str(error):
        result = CheckpointReadError(
            f"{path} could not be read with weights_only=True ({_first_line(error)}). If you "
            "trust the file, load it with trust_pickle=True.")
    else:
        described = what or \
            f"a file that fails to load as one ({type(error).__name__}: {_first_line(error)})"
        result = CheckpointReadError(
            f"{path} is not a readable PyTorch checkpoint (a torch.save file or a pickle): it is "
            f"{described}. Copy or download it again, or name another file.")
    result.__cause__ = None if what else error
    result.__suppress_context__ = True
    return result


def non_finite_tensors(state: Union[Mapping[str, Any], list, tuple], prefix: str = "") -> List[str]:
    """Names of the floating-point tensors holding NaN or infinity in a (nested) checkpoint
    mapping, e.g. ``["model.backbone.fc.weight"]``; lists and tuples are searched too."""
    found = []
    for key, value in state.items() if isinstance(state, Mapping) else enumerate(state):
        name = f"{prefix}{key}"
        if isinstance(value, Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                found.append(name)
        elif isinstance(value, (Mapping, list, tuple)):
            found += non_finite_tensors(value, f"{name}.")
    return found


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
