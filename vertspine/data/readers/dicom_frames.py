"""Multi-frame DICOM: where each frame lies, and its modality rescale.

Three kinds of multi-frame objects, tried in this order:

1. Enhanced objects (enhanced CT/MR/PET, ...): the functional groups. Each frame's
   ImagePositionPatient (Plane Position Sequence), ImageOrientationPatient (Plane Orientation
   Sequence), PixelSpacing and slice thickness (Pixel Measures Sequence) and rescale (Pixel
   Value Transformation Sequence) are read from the frame's Per-Frame Functional Groups item,
   else from the Shared Functional Groups.
2. RT Dose grids: ImagePositionPatient / ImageOrientationPatient of the first frame and the
   GridFrameOffsetVector, the offsets along the normal ``row direction x column direction``
   (PS3.3 C.8.8.3.2: relative to the first frame when the first offset is 0, else z coordinates;
   both are ``position + (offset - offset[0]) * normal``).
3. Anything else (cine loops, legacy multi-frame): frames in stored order, spacing
   ``(PixelSpacing..., SpacingBetweenSlices or SliceThickness or 1)`` and a scaling affine; a
   time series is then indexed along ``k`` with that nominal spacing.

With positions (1, 2), the frames are sorted along the slice normal and checked for even spacing
(:func:`.dicom_geometry.sort_along_normal`); the affine is that of a series of slices.
"""
import os
from typing import List, Optional, Tuple

import numpy as np
import pydicom

from .base import ImageReadError, PathLike, check_spacing, scaling_affine
from .dicom_geometry import (
    orientation_cosines,
    pixel_spacing,
    position_vector,
    series_affine,
    slice_thickness,
    sort_along_normal,
)

__all__ = ["frame_attribute", "frame_rescale", "multiframe_geometry"]


def frame_attribute(dataset: pydicom.Dataset, frame: int, sequence: str, key: str):
    """``key`` of the functional-group macro ``sequence`` for ``frame`` (0-based): the frame's
    Per-Frame Functional Groups item first, then the Shared Functional Groups; None if absent."""
    groups = []
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        groups.append(per_frame[frame])
    shared = dataset.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    for group in groups:
        macro = group.get(sequence)
        if macro and key in macro[0]:
            return macro[0].get(key)
    return None


def frame_rescale(dataset: pydicom.Dataset, frame: int) -> Optional[Tuple[float, float]]:
    """(RescaleSlope, RescaleIntercept) of an enhanced object's frame, or None (then the
    top-level modality LUT applies)."""
    slope = frame_attribute(dataset, frame, "PixelValueTransformationSequence", "RescaleSlope")
    intercept = frame_attribute(dataset, frame, "PixelValueTransformationSequence",
                                "RescaleIntercept")
    if slope in (None, "") or intercept in (None, ""):
        return None
    return float(slope), float(intercept)


def multiframe_geometry(path: PathLike, dataset: pydicom.Dataset,
                        frames: int) -> Tuple[List[int], Tuple[float, float, float], np.ndarray]:
    """Frame order, spacing and RAS+ affine of a multi-frame object (module docstring).

    Returns:
        (order, spacing, affine): frame indices in the volume's ``k`` order; ``(row, column,
        slice)`` spacing in mm; float64 [4, 4] affine of index (row, column, k).
    Raises:
        ImageReadError: inconsistent or missing geometry (frames of several orientations,
            missing or uneven positions, a GridFrameOffsetVector of the wrong length).
    """
    if dataset.get("PerFrameFunctionalGroupsSequence"):
        located = _enhanced_frames(path, dataset, frames)
    elif dataset.get("GridFrameOffsetVector") is not None:
        located = _dose_grid_frames(path, dataset, frames)
    else:
        located = None
    if located is None:
        row_column = pixel_spacing(path, dataset)
        spacing = (*row_column, slice_thickness(dataset))
        return list(range(frames)), spacing, scaling_affine(spacing)
    cosines, positions, row_column, thickness = located
    labels = [f"frame {index + 1}" for index in range(frames)]
    order, step = sort_along_normal(path, labels, positions, cosines, thickness)
    affine = series_affine(cosines, positions[order[0]], row_column, step)
    return order, (*row_column, float(np.linalg.norm(step))), affine


def _enhanced_frames(path: PathLike, dataset: pydicom.Dataset, frames: int):
    """(cosines, positions, (row, column) spacing, thickness) from the functional groups, or
    None when the frames carry no positions (then they are stacked in stored order)."""
    def attribute(frame, sequence, key):
        return frame_attribute(dataset, frame, sequence, key)

    positions = [attribute(f, "PlanePositionSequence", "ImagePositionPatient")
                 for f in range(frames)]
    if all(p is None for p in positions):
        return None
    where = [f"{os.fspath(path)} frame {f + 1}" for f in range(frames)]
    missing = [f + 1 for f, p in enumerate(positions) if p is None]
    if missing:
        raise ImageReadError(f"{os.fspath(path)}: frames {missing[:5]} have no "
                             "ImagePositionPatient while others do; fix the functional groups.")
    cosines = [orientation_cosines(where[f], attribute(f, "PlaneOrientationSequence",
                                                       "ImageOrientationPatient"))
               for f in range(frames)]
    if cosines[0] is None or any(c is None or np.abs(c - cosines[0]).max() > 1e-4
                                 for c in cosines):
        raise ImageReadError(f"{os.fspath(path)}: the frames do not share one "
                             "ImageOrientationPatient (Plane Orientation Sequence); a volume "
                             "needs one orientation. Split the object by orientation.")
    spacing = attribute(0, "PixelMeasuresSequence", "PixelSpacing")
    if not spacing:
        raise ImageReadError(f"{os.fspath(path)}: no PixelSpacing in the Pixel Measures "
                             "Sequence; a volume needs its voxel size. Fix the functional groups.")
    row_column = check_spacing(path, spacing, 2, "fix the Pixel Measures Sequence's PixelSpacing.")
    measures = dataset.SharedFunctionalGroupsSequence[0].get("PixelMeasuresSequence") \
        if dataset.get("SharedFunctionalGroupsSequence") else None
    thickness = slice_thickness(measures[0]) if measures else slice_thickness(dataset)
    return (cosines[0], [position_vector(where[f], p) for f, p in enumerate(positions)],
            row_column, thickness)


def _dose_grid_frames(path: PathLike, dataset: pydicom.Dataset, frames: int):
    """(cosines, positions, (row, column) spacing, thickness) of an RT Dose grid."""
    offsets = np.asarray([float(v) for v in dataset.GridFrameOffsetVector], dtype=np.float64)
    if offsets.shape != (frames,):
        raise ImageReadError(f"{os.fspath(path)}: GridFrameOffsetVector holds {offsets.size} "
                             f"values for {frames} frames; fix the RT Dose header.")
    cosines = orientation_cosines(path, dataset.get("ImageOrientationPatient"))
    if cosines is None or dataset.get("ImagePositionPatient") is None:
        raise ImageReadError(f"{os.fspath(path)}: an RT Dose grid without ImageOrientationPatient"
                             "/ImagePositionPatient cannot be placed; fix the header.")
    normal = np.cross(cosines[0], cosines[1])
    first = position_vector(path, dataset.ImagePositionPatient)
    positions = [first + (offset - offsets[0]) * normal for offset in offsets]
    thickness = float(abs(offsets[1] - offsets[0])) if frames > 1 else slice_thickness(dataset)
    return cosines, positions, pixel_spacing(path, dataset, required=True), thickness
