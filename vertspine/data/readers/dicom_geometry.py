"""DICOM patient geometry: pixel spacing, direction cosines, slice order and the RAS+ affine.

Shared by the single-file reader (one slice, or the frames of a multi-frame object) and the
series reader (one file per slice). DICOM's patient frame is LPS; the affines returned here are
nibabel's RAS+ (x and y negated). Voxel index ``(i, j, k)`` = (row, column, slice), with the
slice normal ``column direction x row direction`` so that the frame is right-handed, as
nibabel's DICOM wrappers choose (SimpleITK indexes (column, row, slice) and so uses the
opposite normal).
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pydicom

from .base import ImageReadError, PathLike, check_spacing, scaling_affine

__all__ = [
    "LPS_TO_RAS",
    "orientation_cosines",
    "pixel_spacing",
    "position_vector",
    "series_affine",
    "single_slice_affine",
    "slice_normal",
    "slice_thickness",
    "sort_along_normal",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # DICOM patient (LPS) -> nibabel world (RAS)
_LISTED = 5  # slices quoted per error
_GAP_TOLERANCE = 0.01  # relative difference of slice gaps (or 0.01 mm, the larger) accepted


def orientation_cosines(where: PathLike, value) -> Optional[np.ndarray]:
    """ImageOrientationPatient as [2, 3] (row direction, column direction) in LPS, or None.

    Row direction: the way a row runs (column index increasing); column direction: the way a
    column runs (row index increasing), PS3.3 C.7.6.2.1.1.

    Args:
        where: the file (and frame) the value belongs to, named in errors.
        value: the attribute's 6 values, or None when absent.
    Raises:
        ImageReadError: not two unit, orthogonal vectors.
    """
    if value is None:
        return None
    cosines = np.asarray([float(v) for v in value]).reshape(-1, 3)
    if (cosines.shape != (2, 3) or not np.allclose(np.linalg.norm(cosines, axis=1), 1, atol=1e-3)
            or abs(cosines[0] @ cosines[1]) > 1e-3):
        raise ImageReadError(
            f"{os.fspath(where)}: ImageOrientationPatient {cosines.ravel().tolist()} is not two "
            "orthogonal unit vectors; fix the DICOM header."
        )
    return cosines


def position_vector(where: PathLike, value) -> np.ndarray:
    """ImagePositionPatient (LPS mm of the first transmitted pixel's centre) as float64 [3].

    Raises:
        ImageReadError: not 3 finite numbers.
    """
    position = np.asarray([float(v) for v in value], dtype=np.float64)
    if position.shape != (3,) or not np.isfinite(position).all():
        raise ImageReadError(f"{os.fspath(where)}: ImagePositionPatient {position.tolist()} is "
                             "not 3 finite numbers; fix the DICOM header.")
    return position


def pixel_spacing(where: PathLike, dataset: pydicom.Dataset,
                  required: bool = False) -> Tuple[float, float]:
    """(row spacing, column spacing) in mm: PixelSpacing, else ImagerPixelSpacing, else (1, 1).

    Args:
        where: the file named in errors.
        dataset: the dataset (or functional-group item) holding the attributes.
        required: a volume needs its voxel size: no PixelSpacing is then an error.
    """
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if dataset.get(key) and (key == "PixelSpacing" or not required):
            return check_spacing(where, dataset.get(key), 2,
                                 f"fix the DICOM {key} (row spacing \\ column spacing, mm).")
    if required:
        raise ImageReadError(f"{os.fspath(where)}: no PixelSpacing; a volume needs its voxel size. "
                             "Fix the DICOM header (PixelSpacing = row spacing \\ column spacing, "
                             "mm).")
    return (1.0, 1.0)


def slice_thickness(dataset: pydicom.Dataset) -> float:
    """The slice's extent along its normal: SpacingBetweenSlices, SliceThickness, or 1 mm."""
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        value = dataset.get(key)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return 1.0


def slice_normal(cosines: np.ndarray) -> np.ndarray:
    """The unit slice normal ``column direction x row direction`` (LPS), as nibabel's."""
    normal = np.cross(cosines[1], cosines[0])
    return normal / np.linalg.norm(normal)


def series_affine(cosines: np.ndarray, first_position, spacing: Tuple[float, float],
                  slice_step: np.ndarray) -> np.ndarray:
    """The RAS+ affine of voxel index (row, column, slice).

    Args:
        cosines: [2, 3] row and column direction cosines (LPS), see :func:`orientation_cosines`.
        first_position: ImagePositionPatient of the first slice (LPS mm): the centre of its
            first transmitted pixel.
        spacing: (row spacing, column spacing) in mm (PixelSpacing order).
        slice_step: LPS mm vector from one slice's position to the next.
    Returns:
        float64 [4, 4]: column 0 = column direction * row spacing (moving down a row), column 1
        = row direction * column spacing, column 2 = ``slice_step``, column 3 = position;
        x and y negated (LPS -> RAS).
    """
    affine = np.eye(4)
    affine[:3, 0] = cosines[1] * spacing[0]
    affine[:3, 1] = cosines[0] * spacing[1]
    affine[:3, 2] = slice_step
    affine[:3, 3] = first_position
    return LPS_TO_RAS @ affine


def single_slice_affine(cosines: Optional[np.ndarray], position: Optional[np.ndarray],
                        spacing: Tuple[float, float], thickness: float) -> np.ndarray:
    """RAS affine of index (row, column, k) of one slice, or ``diag(spacing, 1)`` without
    orientation or position (e.g. a projection radiograph)."""
    if cosines is None or position is None:
        return scaling_affine(spacing)
    return series_affine(cosines, position, spacing, slice_normal(cosines) * thickness)


def sort_along_normal(where: PathLike, labels: Sequence[str], positions: Sequence[np.ndarray],
                      cosines: np.ndarray, thickness: float) -> Tuple[List[int], np.ndarray]:
    """Order slices by their position along the slice normal and check that they are evenly
    spaced (no missing slice, no duplicate).

    Args:
        where: the folder or multi-frame file, named in errors.
        labels: a name per slice for errors (file names, or "frame 3").
        positions: ImagePositionPatient of each slice (LPS mm, [3] each).
        cosines: the [2, 3] direction cosines shared by the slices.
        thickness: the slice step's length when there is a single slice.
    Returns:
        (order, step): slice indices in position order, and the LPS mm vector from one slice to
        the next (``(last - first) / (n - 1)``, so a gantry tilt gives a sheared affine, as in
        dcm2niix).
    Raises:
        ImageReadError: two slices at one position, or uneven gaps (missing slices).
    """
    normal = slice_normal(cosines)
    order = [int(i) for i in np.argsort([p @ normal for p in positions], kind="stable")]
    if len(order) == 1:
        return order, normal * thickness
    ordered = np.stack([positions[i] for i in order])
    names = [labels[i] for i in order]
    gaps = np.diff(ordered @ normal)
    typical = float(np.median(gaps))
    if typical <= 0 or gaps.min() <= 1e-3 * typical:
        k = int(np.argmin(gaps))
        raise ImageReadError(
            f"{os.fspath(where)}: {names[k]} and {names[k + 1]} are at the same position "
            f"{ordered[k].tolist()} along the slice normal: duplicated slices, or several "
            "acquisitions in one object. Keep one slice per position."
        )
    uneven = np.flatnonzero(np.abs(gaps - typical) > max(_GAP_TOLERANCE * typical, 0.01))
    if uneven.size:
        listed = ", ".join(f"{gaps[k]:.4g} mm between {names[k]} and {names[k + 1]}"
                           for k in uneven[:_LISTED])
        raise ImageReadError(
            f"{os.fspath(where)}: uneven slice spacing: most slices are {typical:.4g} mm apart, "
            f"but {listed}; slices are missing or the series mixes acquisitions. Add the missing "
            "slices, or convert the series with a resampling tool (dcm2niix)."
        )
    return order, (ordered[-1] - ordered[0]) / (len(order) - 1)
