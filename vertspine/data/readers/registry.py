"""The reader registry: one :class:`~.base.ImageReader` per format, chosen by file ending.

Choice (:func:`reader_for`): a folder is a DICOM series; otherwise the longest registered ending
the lower-cased name ends with (``.nii.gz`` before ``.gz``); a file with no known ending but the
DICOM ``DICM`` preamble is single-file DICOM. Anything else is an error listing the endings.
"""
import os
from typing import Any, Dict, Tuple, Type

import numpy as np

from .base import (
    DICOM_MAGIC_OFFSET,
    ImageMeta,
    ImageReadError,
    ImageReader,
    PathLike,
    has_dicom_magic,
)

__all__ = [
    "READERS",
    "has_dicom_preamble",
    "read_image_and_meta",
    "read_volume",
    "reader_for",
    "register_reader",
    "supported_endings",
]

READERS: Dict[str, Type[ImageReader]] = {}  # reader name -> class
DICOM_SERIES_READER = "dicom_series"  # the reader of folders
_DICOM_FILE_READER = "dicom"


def register_reader(cls: Type[ImageReader]) -> Type[ImageReader]:
    """Class decorator: register a reader under ``cls.name`` for its ``cls.endings``.

    Raises:
        ValueError: the name is taken, or an ending is already another reader's.
    """
    if not cls.name or cls.name in READERS:
        raise ValueError(f"Reader {cls.__name__}: name {cls.name!r} is empty or already taken "
                         f"by {READERS.get(cls.name)}.")
    taken = {e: r.name for r in READERS.values() for e in r.endings}
    clashes = sorted(e for e in cls.endings if e in taken)
    if clashes:
        raise ValueError(f"Reader {cls.name!r}: endings {clashes} are already read by "
                         f"{sorted({taken[e] for e in clashes})}.")
    READERS[cls.name] = cls
    return cls


def supported_endings() -> Tuple[str, ...]:
    """Every registered file ending, sorted."""
    return tuple(sorted(e for r in READERS.values() for e in r.endings))


def has_dicom_preamble(path: PathLike) -> bool:
    """Whether the file holds ``DICM`` after the 128-byte preamble (PS3.10 7.1)."""
    with open(path, "rb") as f:
        return has_dicom_magic(f.read(DICOM_MAGIC_OFFSET + 4))


def reader_for(path: PathLike) -> Type[ImageReader]:
    """The reader class of ``path`` (rules in the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: no registered reader reads it; the message lists the endings.
    """
    if os.path.isdir(path):
        return READERS[DICOM_SERIES_READER]
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image file not found: {os.fspath(path)}")
    name = os.path.basename(os.fspath(path)).lower()
    matches = [(len(e), r) for r in READERS.values() for e in r.endings if name.endswith(e)]
    if matches:
        return max(matches, key=lambda m: m[0])[1]
    if has_dicom_preamble(path):
        return READERS[_DICOM_FILE_READER]
    raise ImageReadError(
        f"{os.fspath(path)}: no reader for this file ending; supported endings are "
        f"{', '.join(supported_endings())}, a DICOM file (with the 'DICM' preamble) or a folder "
        "holding one DICOM series. Convert the file or rename it with its format's ending."
    )


def read_image_and_meta(path: PathLike, **options: Any) -> Tuple[np.ndarray, ImageMeta]:
    """Read any supported image or volume into its real values and metadata.

    Args:
        path: a file (format by ending) or a folder holding one DICOM series.
        **options: constructor arguments of the chosen reader, e.g. ``spacing`` for ``.npy``,
            ``key`` for ``.npz``, ``apply_voi`` for DICOM.
    Returns:
        ``(array, meta)``: see :mod:`vertspine.data.readers.base` for the conventions.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: unknown ending, or the file cannot be decoded.
        TypeError: an option the chosen reader does not take.
    """
    return reader_for(path)(**options).read(path)


def read_volume(path: PathLike, **options: Any) -> Tuple[np.ndarray, ImageMeta]:
    """:func:`read_image_and_meta` for a 3D volume: array [I, J, K] in the affine's index order.

    Raises:
        ImageReadError: additionally, when the file holds a 2D image.
    """
    array, meta = read_image_and_meta(path, **options)
    if meta.spatial_dims != 3:
        raise ImageReadError(
            f"{os.fspath(path)}: a {meta.spatial_dims}D image of shape {array.shape}, not a 3D "
            "volume; read it with read_image_and_meta, or save the volume in 3D."
        )
    return array, meta
