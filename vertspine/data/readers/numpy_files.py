"""NumPy files: ``.npy`` (one array) and ``.npz`` in the CVPR24 MedSAM-on-laptop layout.

``.npy``: one single-channel 2D ``[H, W]`` or 3D ``[I, J, K]`` array (vesselFM's
``img.npy``/``mask.npy``); the file holds no geometry, so spacing is 1 along every axis unless
given, and the affine is ``diag(spacing, 1)``.

``.npz`` (the challenge's layout): ``imgs`` the image, optional ``gts`` the labels, optional
``spacing``. 3D cases hold ``imgs`` ``(D, H, W)`` as written by SimpleITK's
``GetArrayFromImage`` and ``spacing`` from ``GetSpacing()``, which is in SimpleITK's
``(x, y, z)`` order, i.e. the *reverse* of the array's axes: the reader reverses it, so
:attr:`ImageMeta.spacing` is ``(D, H, W)`` spacing in the array's order. 2D cases hold ``imgs``
``(H, W, 3)`` RGB and no spacing (spacing 1). The npz has no direction: the affine is
``diag(spacing, 1)``.
"""
import os
import zipfile
from typing import Optional, Sequence, Tuple

import numpy as np

from .base import (
    ImageMeta,
    ImageReadError,
    ImageReader,
    PathLike,
    axcodes,
    check_spacing,
    scaling_affine,
)
from .registry import register_reader

__all__ = ["NpyReader", "NpzReader"]

_NPZ_KEYS = ("imgs", "gts")


def _load(path: PathLike, loader):
    """``loader(path)`` with FileNotFoundError / ImageReadError naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NumPy file not found: {os.fspath(path)}")
    try:
        return loader(os.fspath(path))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ImageReadError(
            f"{os.fspath(path)}: not a readable NumPy file ({type(e).__name__}: {e}); it is "
            "truncated, corrupt or holds Python objects (pickles are not loaded). Re-save it "
            "with np.save / np.savez_compressed."
        ) from e


def _meta(path: PathLike, array: np.ndarray, spacing: Tuple[float, ...],
          channel_order: Optional[str] = None) -> ImageMeta:
    """Meta of an array without direction: affine ``diag(spacing, 1)``."""
    affine = scaling_affine(spacing)
    return ImageMeta(spacing=spacing, affine=affine, orientation=axcodes(affine, len(spacing)),
                     original_dtype=array.dtype, spatial_dims=len(spacing),
                     source=os.fspath(path), channel_order=channel_order)


def _check_numeric(path: PathLike, array: np.ndarray, what: str) -> None:
    """ImageReadError unless ``array`` is a real-valued (bool, integer or float) 2D/3D array."""
    if array.dtype.kind not in "biuf" or array.ndim not in (2, 3):
        raise ImageReadError(
            f"{os.fspath(path)}: {what} is a {array.ndim}D {array.dtype} array of shape "
            f"{array.shape}; a single-channel 2D or 3D array of numbers is expected."
        )


@register_reader
class NpyReader(ImageReader):
    """A ``.npy`` array.

    Args:
        spacing: voxel spacing in mm, one per array axis; default 1 along every axis.
    """

    name = "npy"
    endings = (".npy",)

    def __init__(self, *, spacing: Optional[Sequence[float]] = None):
        self.spacing = spacing

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """The array as stored (its dtype and axes) and its meta."""
        array = _load(path, lambda p: np.load(p, allow_pickle=False))
        if not isinstance(array, np.ndarray):
            raise ImageReadError(f"{os.fspath(path)}: holds several arrays; name it .npz.")
        _check_numeric(path, array, "the array")
        spacing = (1.0,) * array.ndim if self.spacing is None else self.spacing
        spacing = check_spacing(path, spacing, array.ndim,
                                "pass one positive spacing per array axis (spacing=...).")
        return array, _meta(path, array, spacing)


@register_reader
class NpzReader(ImageReader):
    """A ``.npz`` case in the CVPR24 MedSAM layout (see the module docstring).

    Args:
        key: the array to read, ``"imgs"`` (the image) or ``"gts"`` (the labels).
    """

    name = "npz"
    endings = (".npz",)

    def __init__(self, *, key: str = "imgs"):
        if key not in _NPZ_KEYS:
            raise ValueError(f"NpzReader key {key!r}: use one of {_NPZ_KEYS}.")
        self.key = key

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """``npz[key]`` as stored and its meta (spacing reversed to the array's axis order)."""

        def load(p: str):
            with np.load(p, allow_pickle=False) as archive:
                return archive.files, {k: archive[k] for k in (self.key, "spacing")
                                       if k in archive.files}

        files, arrays = _load(path, load)
        if self.key not in arrays:
            raise ImageReadError(
                f"{os.fspath(path)}: no array {self.key!r} in the npz (it holds {files}); the "
                "CVPR24 MedSAM layout stores the image as 'imgs', the labels as 'gts'."
            )
        array, stored_spacing = arrays[self.key], arrays.get("spacing")
        # a 2D case: imgs (H, W, 3) RGB without spacing
        colour = self.key == "imgs" and array.ndim == 3 and array.shape[-1] == 3 \
            and stored_spacing is None
        _check_numeric(path, array[..., 0] if colour else array, f"'{self.key}'")
        if stored_spacing is None:
            spacing = (1.0,) * (2 if colour else array.ndim)
        else:
            spacing = np.asarray(stored_spacing, dtype=np.float64).reshape(-1)[::-1]
        spacing = check_spacing(path, spacing, 2 if colour else array.ndim,
                                "store 'spacing' as SimpleITK's GetSpacing() (x, y, z).")
        return array, _meta(path, array, spacing, "RGB" if colour else None)
