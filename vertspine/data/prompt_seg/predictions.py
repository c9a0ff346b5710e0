"""Inference inputs and outputs of the npz format: zero-box inputs skipped and reported, and the
predictions' ``segs``: uint16 with the image's spatial shape (0 background, box ``i`` -> label
``i + 1``; uint16 so that 256 and more boxes survive, the baseline's uint8 overflowed).
"""
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from vertspine.utils.file_io import write_npz

from .npz_format import format_error, load_npz_arrays

__all__ = ["read_segs", "scan_inference_inputs", "write_segs"]

logger = logging.getLogger(__name__)

_MAX_SEGS_LABEL = np.iinfo(np.uint16).max


def write_segs(path: str, segs: np.ndarray) -> None:
    """Write a prediction as the challenge's ``segs`` (uint16, compressed, atomically).

    Raises:
        PromptSegFormatError: non-integer, negative or > 65535 labels (nothing is written).
    """
    segs = np.asarray(segs)
    out_of_range = segs.size and (segs.min() < 0 or segs.max() > _MAX_SEGS_LABEL)
    if segs.dtype.kind not in "iub" or out_of_range:
        raise format_error(
            path, f"'segs' must hold integer labels 0..{_MAX_SEGS_LABEL} (uint16), got "
            f"{segs.dtype} in [{segs.min() if segs.size else 0}, "
            f"{segs.max() if segs.size else 0}].")
    write_npz(path, {"segs": segs.astype(np.uint16)})


def read_segs(path: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """The ``segs`` array of a prediction file, checked: unsigned integers of ``shape`` if given.

    Raises:
        PromptSegFormatError: no ``segs``, a signed/float dtype, or another shape.
    """
    path = os.fspath(path)
    files, arrays = load_npz_arrays(path, ("segs",))
    if "segs" not in arrays:
        raise format_error(
            path, f"no 'segs' array (the file holds {files}); predictions store the "
            "label map as 'segs' (uint16).")
    segs = arrays["segs"]
    if segs.dtype.kind != "u" or (shape is not None and segs.shape != tuple(shape)):
        raise format_error(
            path, f"'segs' is a {segs.dtype} array {segs.shape}; expected unsigned "
            f"integers of shape {tuple(shape) if shape else 'the image'}.")
    return segs


def scan_inference_inputs(paths: Sequence[str]) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Split inference inputs into cases to run and skipped ones, reported in one warning.

    Only ``boxes`` is read here (the image is read and checked when the case is run).

    Args:
        paths: npz files.
    Returns:
        (the files that hold boxes, [(skipped file, reason)] for files with zero boxes).
    Raises:
        PromptSegFormatError: a file without ``boxes`` (not an inference input) or unreadable.
    """
    run, skipped = [], []
    for path in paths:
        files, arrays = load_npz_arrays(os.fspath(path), ("boxes",))
        if "boxes" not in arrays:
            raise format_error(
                path, f"no 'boxes' array (the file holds {files}); an inference input "
                "stores its prompts as 'boxes'.")
        if arrays["boxes"].size == 0:
            skipped.append((os.fspath(path), "zero boxes"))
        else:
            run.append(os.fspath(path))
    if skipped:
        logger.warning("Skipping %d of %d inputs with zero boxes (nothing to segment): %s",
                       len(skipped), len(paths), ", ".join(os.path.basename(p) for p, _ in skipped))
    return run, skipped
