"""The CVPR24 "MedSAM on laptop" npz format, read and written with validation.

One case per ``.npz`` file (arrays, no pickles):

* 2D: ``imgs`` uint8 ``(H, W, 3)`` RGB (``(H, W)`` grey is accepted), ``gts`` integer labels
  ``(H, W)`` (0 background, any positive values), inference inputs ``boxes`` ``(N, 4)``
  ``x_min, y_min, x_max, y_max``.
* 3D: ``imgs`` ``(D, H, W)`` (uint8 as the challenge ships it, or Hounsfield units as integers or
  floats), ``gts`` ``(D, H, W)``, ``spacing`` 3 values in mm, inference inputs ``boxes``
  ``(N, 6)`` ``x_min, y_min, z_min, x_max, y_max, z_max``.
* predictions: ``segs`` uint16 (:mod:`.predictions`).

**Box coordinates** are pixel (voxel) indices, inclusive at both ends, as the challenge derives
them from ``gts`` with ``np.where``: a box around columns 3..5 is ``x_min=3, x_max=5``; ``z_min``
and ``z_max`` are the first and last slice of the object (both segmented). Values up to
:data:`BOX_CLIP_TOLERANCE` px (slices) outside the image are clipped onto it (the originals' 3 px
box expansion clipped with ``min(W, ...)`` ends one past the last index); farther out, min > max
or non-finite values are errors naming the file, the box and the fix.

**Spacing axis order.** On disk ``spacing`` follows the challenge files, which store SimpleITK's
``GetSpacing()``: ``(x, y, z)``, the *reverse* of the array's ``(D, H, W)`` axes (the challenge's
``pre_CT_MR.py``; its evaluation then misapplied it to the arrays). Every array here works in the
array's order: :attr:`PromptSegCase.spacing` is ``(D, H, W)`` mm (the same as
:class:`vertspine.data.readers.NpzReader`), and :func:`write_prompt_seg_npz` takes the array's
order and stores ``(x, y, z)``. Files written in the array's order are read with
``spacing_order="zyx"``; the reader warns when the stored values look like that (first value
unequal to the second, second equal to the third: CT/MR in-plane spacing is usually square, so
``(x, y, z)`` files repeat their first two values).
"""
import logging
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vertspine.data.readers.base import ImageReadError, check_spacing
from vertspine.utils.file_io import write_npz

from .preprocess import mask_boxes

__all__ = [
    "BOX_CLIP_TOLERANCE",
    "NoBoxesError",
    "PromptSegCase",
    "PromptSegFormatError",
    "SPACING_ORDERS",
    "check_boxes",
    "prompt_boxes",
    "read_prompt_seg_npz",
    "write_prompt_seg_npz",
]

logger = logging.getLogger(__name__)

BOX_CLIP_TOLERANCE = 1.0  # px (slices) a box may reach outside the image before it is an error
SPACING_ORDERS = ("xyz", "zyx")  # "xyz": the challenge's SimpleITK order; "zyx": the array's


class PromptSegFormatError(ImageReadError):
    """An npz case breaks the format; the message names the file, the array and the fix."""


class NoBoxesError(PromptSegFormatError):
    """An inference input holds zero boxes: nothing to segment, the case is skipped (reported)."""


@dataclass(frozen=True, eq=False)
class PromptSegCase:
    """One validated npz case.

    Attributes:
        path: the file.
        imgs: the image as stored: 2D uint8 [H, W, 3] (grey [H, W] is returned as stored) or
            3D [D, H, W] (uint8, integer or float values, e.g. Hounsfield units).
        gts: integer labels [H, W] / [D, H, W] (0 background), or None when the file has none.
        boxes: float64 [N, 4] ``x_min, y_min, x_max, y_max`` (2D) or [N, 6] ``x_min, y_min,
            z_min, x_max, y_max, z_max`` (3D), inclusive pixel indices clipped to the image, or
            None when the file has none.
        spacing: 3D: mm per voxel in the array's axis order (D, H, W); 2D: None.
    """

    path: str
    imgs: np.ndarray
    gts: Optional[np.ndarray]
    boxes: Optional[np.ndarray]
    spacing: Optional[Tuple[float, float, float]]

    @property
    def spatial_dims(self) -> int:
        """2 or 3."""
        return 2 if self.spacing is None else 3

    @property
    def spatial_shape(self) -> Tuple[int, ...]:
        """(H, W) or (D, H, W)."""
        return tuple(self.imgs.shape[:2] if self.spatial_dims == 2 else self.imgs.shape)


def format_error(path: str, message: str) -> PromptSegFormatError:
    return PromptSegFormatError(f"{path}: {message}")


def load_npz_arrays(path: str, keys: Sequence[str]) -> Tuple[List[str], Dict[str, np.ndarray]]:
    """The archive's member names and the arrays of ``keys`` it holds."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"npz case not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            return list(archive.files), {k: archive[k] for k in keys if k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise format_error(
            path, f"not a readable npz archive ({type(e).__name__}: {e}); re-save it "
            "with np.savez_compressed(path, imgs=..., gts=...).") from e


def _is_3d(imgs: np.ndarray, gts: Optional[np.ndarray], boxes: Optional[np.ndarray],
           has_spacing: bool) -> bool:
    """A 3D case: spacing stored, 3D labels, 6-value boxes or a 3D array not ending in 3."""
    return (has_spacing or (gts is not None and gts.ndim == 3)
            or (boxes is not None and boxes.ndim == 2 and boxes.shape[1] == 6)
            or (imgs.ndim == 3 and imgs.shape[-1] != 3))


def _check_imgs(path: str, imgs: np.ndarray, is_3d: bool) -> None:
    if is_3d:
        if imgs.ndim != 3 or imgs.dtype.kind not in "iuf":
            raise format_error(
                path, f"'imgs' is a {imgs.ndim}D {imgs.dtype} array {imgs.shape}; a 3D "
                "case holds a (D, H, W) array of numbers (uint8 or HU).")
    elif not (imgs.dtype == np.uint8
              and (imgs.ndim == 2 or (imgs.ndim == 3 and imgs.shape[-1] == 3))):
        raise format_error(
            path, f"'imgs' is a {imgs.dtype} array {imgs.shape}; a 2D case holds uint8 "
            "(H, W, 3) RGB or (H, W) grey (convert it, e.g. with "
            "vertspine.data.image_io.to_display_uint8).")
    if min(imgs.shape) == 0:
        raise format_error(path, f"'imgs' {imgs.shape} is empty.")


def _check_gts(path: str, gts: np.ndarray, shape: Tuple[int, ...]) -> None:
    if gts.dtype.kind not in "iu" or gts.shape != shape:
        raise format_error(
            path, f"'gts' is a {gts.dtype} array {gts.shape}; the labels must be an "
            f"integer array of the image's spatial shape {shape}.")
    if gts.dtype.kind == "i" and gts.size and gts.min() < 0:
        raise format_error(
            path, f"'gts' holds negative labels (min {gts.min()}); 0 is background, "
            "objects are positive integers.")


def check_boxes(path: str, boxes: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Validate and clip prompt boxes (conventions in the module docstring).

    Args:
        path: the file the boxes come from (named in errors).
        boxes: [N, 4] (2D) or [N, 6] (3D) box coordinates, inclusive pixel indices.
        shape: the image's spatial shape, (H, W) or (D, H, W).
    Returns:
        float64 boxes of the same shape, clipped onto the image.
    Raises:
        NoBoxesError: N == 0.
        PromptSegFormatError: wrong shape or dtype, non-finite values, min > max, or a value more
            than :data:`BOX_CLIP_TOLERANCE` outside the image.
    """
    width = 2 * len(shape)
    kind = "x_min, y_min, x_max, y_max" if width == 4 else \
        "x_min, y_min, z_min, x_max, y_max, z_max"
    boxes = np.asarray(boxes)
    if boxes.dtype.kind not in "iuf" or boxes.ndim != 2 or boxes.shape[1] != width:
        raise format_error(
            path, f"'boxes' is a {boxes.dtype} array {boxes.shape}; a {len(shape)}D "
            f"case needs (N, {width}) numbers: {kind}.")
    if len(boxes) == 0:
        raise NoBoxesError(f"{path}: 'boxes' holds zero boxes; nothing to segment (skipped).")
    boxes = boxes.astype(np.float64)
    if not np.isfinite(boxes).all():
        raise format_error(
            path, "'boxes' holds NaN or infinite values (box "
            f"{np.argwhere(~np.isfinite(boxes))[0, 0]}); store finite pixel indices.")
    half = width // 2
    lower, upper = boxes[:, :half], boxes[:, half:]
    # per coordinate (x, y[, z]): the last index along W, H[, D]
    last = np.array([shape[-1] - 1, shape[-2] - 1] + ([shape[0] - 1] if half == 3 else []), float)
    names = "xyz"
    inverted = np.argwhere(lower > upper)
    if len(inverted):
        i, axis = inverted[0]
        raise format_error(
            path, f"box {i} {boxes[i].tolist()} has {names[axis]}_min > "
            f"{names[axis]}_max ({len(inverted)} such values); store {kind}.")
    outside = np.argwhere((lower < -BOX_CLIP_TOLERANCE) | (upper > last + BOX_CLIP_TOLERANCE))
    if len(outside):
        i, axis = outside[0]
        raise format_error(
            path, f"box {i} {boxes[i].tolist()} reaches outside the image "
            f"({names[axis]} must lie in 0..{last[axis]:g}, tolerance "
            f"{BOX_CLIP_TOLERANCE:g}; image {shape}); boxes are inclusive pixel "
            f"indices {kind}. Fix the boxes or the image.")
    return np.concatenate([np.clip(lower, 0, last), np.clip(upper, 0, last)], axis=1)


def _checked_spacing(path: str, spacing: Sequence[float], fix: str) -> Tuple[float, ...]:
    """:func:`check_spacing`, raising :class:`PromptSegFormatError`."""
    try:
        return check_spacing(path, spacing, 3, fix)
    except ImageReadError as e:
        raise PromptSegFormatError(str(e)) from None


def prompt_boxes(gts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """One prompt box per labelled object of a case, as the format's ``boxes``.

    2D: the object's tight box. 3D: the object's slice range ``z_min..z_max`` and, in-plane, its
    tight box on the middle slice ``z_min + (z_max - z_min) // 2`` (where inference segments with
    the given box before propagating); if the object misses that slice, its box over all slices.

    Args:
        gts: integer labels [H, W] or [D, H, W].
    Returns:
        (label values [N] increasing, float64 boxes [N, 4] / [N, 6] in inclusive pixel indices).
    """
    values = np.unique(gts)
    values = values[values > 0]
    if gts.ndim == 2:
        return values, mask_boxes(gts, values)
    boxes = np.zeros((len(values), 6), np.float64)
    for i, value in enumerate(values):
        slices = np.flatnonzero((gts == value).any(axis=(1, 2)))
        z_min, z_max = slices[0], slices[-1]
        middle = gts[z_min + (z_max - z_min) // 2]
        plane = middle if (middle == value).any() else (gts == value).any(axis=0) * value
        x_min, y_min, x_max, y_max = mask_boxes(plane, [value])[0]
        boxes[i] = x_min, y_min, z_min, x_max, y_max, z_max
    return values, boxes


def _spacing(path: str, stored: np.ndarray, spacing_order: str) -> Tuple[float, float, float]:
    values = _checked_spacing(path, stored, "store 'spacing' as 3 positive values in mm, in "
                                            "SimpleITK's (x, y, z) order (the challenge's).")
    if spacing_order == "xyz" and values[0] != values[1] and values[1] == values[2]:
        logger.warning("%s: spacing %s looks like (z, y, x) (in-plane values last); it is read "
                       "as the challenge's (x, y, z). If the file stores the array's order, read "
                       "it with spacing_order='zyx'.", path, values)
    return tuple(values[::-1]) if spacing_order == "xyz" else values


def read_prompt_seg_npz(path: str, *, require_gts: bool = False, require_boxes: bool = False,
                        spacing_order: str = "xyz") -> PromptSegCase:
    """Read and validate one npz case.

    Args:
        path: the ``.npz`` file.
        require_gts: the case must hold ``gts`` (training and evaluation data).
        require_boxes: the case must hold ``boxes`` (inference inputs).
        spacing_order: the order of the stored ``spacing``: "xyz" (the challenge's SimpleITK
            order, default) or "zyx" (the array's order).
    Returns:
        the case (see :class:`PromptSegCase`; spacing in the array's order).
    Raises:
        FileNotFoundError: no such file.
        NoBoxesError: ``boxes`` is present and empty.
        PromptSegFormatError: anything else that breaks the format (see the module docstring).
    """
    if spacing_order not in SPACING_ORDERS:
        raise ValueError(f"spacing_order {spacing_order!r}: use one of {SPACING_ORDERS}.")
    path = os.fspath(path)
    files, arrays = load_npz_arrays(path, ("imgs", "gts", "boxes", "spacing"))
    if "imgs" not in arrays:
        raise format_error(
            path, f"no 'imgs' array (the file holds {files}); the challenge format stores "
            "the image as 'imgs' ((H, W, 3) uint8 in 2D, (D, H, W) in 3D).")
    for key, needed in (("gts", require_gts), ("boxes", require_boxes)):
        if needed and key not in arrays:
            raise format_error(
                path, f"no '{key}' array (the file holds {files}); "
                + ("labelled data stores the labels as 'gts'." if key == "gts" else
                "an inference input stores its prompts as 'boxes'."))
    imgs, gts, boxes = arrays["imgs"], arrays.get("gts"), arrays.get("boxes")
    is_3d = _is_3d(imgs, gts, boxes, "spacing" in arrays)
    _check_imgs(path, imgs, is_3d)
    spacing = None
    if is_3d:
        if "spacing" not in arrays:
            raise format_error(
                path, "a 3D case without 'spacing'; store the voxel spacing in mm as "
                "'spacing', in SimpleITK's (x, y, z) order (the challenge's).")
        spacing = _spacing(path, arrays["spacing"], spacing_order)
    shape = tuple(imgs.shape if is_3d else imgs.shape[:2])
    if gts is not None:
        _check_gts(path, gts, shape)
    if boxes is not None:
        boxes = check_boxes(path, boxes, shape)
    return PromptSegCase(path=path, imgs=imgs, gts=gts, boxes=boxes, spacing=spacing)


def write_prompt_seg_npz(path: str, imgs: np.ndarray, *, gts: Optional[np.ndarray] = None,
                         boxes: Optional[np.ndarray] = None,
                         spacing: Optional[Sequence[float]] = None) -> None:
    """Write one case (compressed, atomically) after checking it as :func:`read_prompt_seg_npz`.

    Args:
        path: the ``.npz`` target.
        imgs: 2D uint8 [H, W, 3] / [H, W], or 3D [D, H, W].
        gts: integer labels of the spatial shape, or None.
        boxes: [N, 4] / [N, 6] inclusive pixel indices, or None.
        spacing: 3D only and required there: mm per voxel in the array's order (D, H, W); stored
            reversed, as the challenge's (x, y, z).
    Raises:
        PromptSegFormatError: the arrays break the format (nothing is written).
    """
    arrays = {"imgs": np.asarray(imgs)}
    for key, value in (("gts", gts), ("boxes", boxes)):
        if value is not None:
            arrays[key] = np.asarray(value)
    is_3d = _is_3d(arrays["imgs"], arrays.get("gts"), arrays.get("boxes"), spacing is not None)
    _check_imgs(path, arrays["imgs"], is_3d)
    shape = tuple(arrays["imgs"].shape if is_3d else arrays["imgs"].shape[:2])
    if is_3d:
        if spacing is None:
            raise format_error(
                path, "a 3D case needs spacing=(D, H, W) mm (the array's order).")
        arrays["spacing"] = np.asarray(_checked_spacing(
            path, spacing, "pass 3 positive mm values in the array's (D, H, W) order.")[::-1])
    if "gts" in arrays:
        _check_gts(path, arrays["gts"], shape)
    if "boxes" in arrays:
        check_boxes(path, arrays["boxes"], shape)
    write_npz(path, arrays)
