"""What every reader returns: the array in its real values and an :class:`ImageMeta`.

Conventions (all readers):

* values: what the file holds after the format's own scaling (DICOM modality LUT, NIfTI
  ``scl_slope``/``scl_inter``), as float or integer; never quantised to uint8.
* axes: the array's spatial axes are the affine's voxel-index axes, in order (nibabel's
  ``i, j, k``). 2D images keep row-major ``[H, W]`` (row 0 = top), so ``i`` = row, ``j`` = column;
  colour images add a last channel axis ``[H, W, 3]`` named by :attr:`ImageMeta.channel_order`.
* world frame: RAS+ millimetres, as nibabel's ``img.affine`` (DICOM's LPS is converted by
  negating x and y). Sources without geometry (PNG, ``.npy``) get a scaling affine
  ``diag(spacing, 1)``: axes read as R, A, S in the index order, spacing 1 unless given.
"""
import errno
import os
from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence, Tuple, Union

import numpy as np
from nibabel.orientations import aff2axcodes

__all__ = [
    "ImageMeta",
    "ImageReadError",
    "ImageReader",
    "PathLike",
    "axcodes",
    "check_spacing",
    "has_dicom_magic",
    "read_file_bytes",
    "scaling_affine",
]

PathLike = Union[str, "os.PathLike[str]"]
DICOM_MAGIC_OFFSET = 128  # the 4 bytes b"DICM" follow a 128-byte preamble (PS3.10 7.1)


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded into an array (the message names the file)."""


@dataclass(frozen=True, eq=False)
class ImageMeta:
    """Geometry and provenance of an array a reader returned.

    Attributes:
        spacing: voxel size in mm along each spatial axis, in the array's axis order
            (``(row, column)`` for 2D, ``(i, j, k)`` for volumes); 1.0 where the file has none.
        affine: float64 [4, 4], voxel index ``(i, j, k, 1)`` -> RAS+ world mm (2D: ``k`` = 0).
        orientation: nibabel axis codes of the spatial axes, one letter each, e.g. ``"RAS"``,
            ``"LP"``: the world direction each index axis increases towards.
        original_dtype: the dtype stored in the file (before any scaling).
        spatial_dims: 2 or 3.
        source: the file (or DICOM series folder) read.
        channel_order: ``"RGB"`` when the last axis holds colour channels, else None.
    """

    spacing: Tuple[float, ...]
    affine: np.ndarray
    orientation: str
    original_dtype: np.dtype
    spatial_dims: int
    source: str
    channel_order: Optional[str] = None


class ImageReader:
    """One file format: subclasses set ``name`` and ``endings`` and implement :meth:`read`.

    Options of a format (e.g. DICOM's ``apply_voi``) are constructor arguments, so a reader
    instance is a configured, stateless function of a path.
    """

    name: ClassVar[str] = ""
    endings: ClassVar[Tuple[str, ...]] = ()  # lower-case file endings, e.g. (".nii", ".nii.gz")

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """Read ``path`` into ``(array, meta)`` (conventions in the module docstring).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ImageReadError: the file cannot be decoded; the message names it and the fix.
        """
        raise NotImplementedError


def read_file_bytes(path: PathLike) -> bytes:
    """The whole file; FileNotFoundError naming the path, ImageReadError if it is empty."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            errno.ENOENT, "Image file not found (check image_root and file_name)", os.fspath(path)
        )
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ImageReadError(f"{os.fspath(path)}: the file is empty; re-export or re-copy it.")
    return data


def has_dicom_magic(data: bytes) -> bool:
    """Whether a file's first bytes (at least 132) hold ``DICM`` after the 128-byte preamble."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def check_spacing(path: PathLike, spacing: Sequence[float], spatial_dims: int,
                  fix: str) -> Tuple[float, ...]:
    """``spacing`` as a tuple of floats, checked: one positive finite value per spatial axis.

    Args:
        path: the file the spacing belongs to (named in the error).
        spacing: the candidate spacing.
        spatial_dims: the number of values it must have.
        fix: how to correct the source of the spacing (ends the error message).
    Raises:
        ImageReadError: wrong length, zero, negative or non-finite values.
    """
    values = tuple(float(s) for s in np.asarray(spacing, dtype=np.float64).reshape(-1))
    if len(values) != spatial_dims or not all(np.isfinite(s) and s > 0 for s in values):
        raise ImageReadError(
            f"{os.fspath(path)}: voxel spacing {values} is not {spatial_dims} positive finite "
            f"values (mm); {fix}"
        )
    return values


def scaling_affine(spacing: Sequence[float]) -> np.ndarray:
    """``diag(spacing, 1)`` as a [4, 4] float64 affine (2D spacing gets 1 mm along ``k``)."""
    diagonal = list(spacing) + [1.0] * (4 - len(spacing))
    return np.diag(np.asarray(diagonal, dtype=np.float64))


def axcodes(affine: np.ndarray, spatial_dims: int) -> str:
    """nibabel's axis codes of the first ``spatial_dims`` index axes, e.g. ``"RAS"``.

    An axis of a degenerate (singular) affine has no direction and gets ``"?"``.
    """
    return "".join(code or "?" for code in aff2axcodes(affine))[:spatial_dims]
