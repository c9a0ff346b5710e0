"""One VerSe scan as sagittal slices: orientation, mid-sagittal centre, rendering, boxes.

Frames. Volumes are read in the closest canonical orientation, RAS+ (what
``nib.as_closest_canonical`` gives; oblique affines are rounded to the nearest axes, nothing is
resampled): axis 0 runs left->right (x), 1 posterior->anterior (y), 2 inferior->superior (z).
A sagittal slice is a fixed x. Its PNG has the patient's **superior side up and anterior side
left** (as in the phantom radiographs): image row r shows z = nz - 1 - r, column c shows
y = ny - 1 - c, then both axes are resampled to ``spacing_mm`` square pixels using the voxel
sizes, so vertebrae keep their shape. Boxes are XYXY in pixel-edge coordinates of that PNG
(voxel row i spans [i, i+1) before scaling): the exact bounding box of the label's voxels on the
slice, scaled by the output/input size ratio of each axis.

Only the slices needed are read from the CT (the NIfTI proxy is sliced); the mask is read whole.
"""
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import nibabel as nib
import nibabel.orientations as nio
import numpy as np
from scipy import ndimage

from .discovery import VerseScan

__all__ = [
    "CanonicalScan",
    "SliceBox",
    "load_scan",
    "read_centroids",
    "render_slice",
    "sagittal_centre",
    "slice_boxes",
    "slice_positions",
]


@dataclass
class CanonicalScan:
    """A scan in RAS+ voxel order.

    Attributes:
        scan: where it came from.
        mask: [nx, ny, nz] int16 VerSe labels (0 = background), RAS+ voxel order.
        spacing: (sx, sy, sz) voxel sizes in mm along the RAS+ axes.
    """

    scan: VerseScan
    mask: np.ndarray
    spacing: Tuple[float, float, float]
    _ct: Any  # the nibabel image, read lazily
    _ornt: np.ndarray  # io_orientation of the files' affine

    def ct_slices(self, xs: Sequence[int]) -> Dict[int, np.ndarray]:
        """The CT at RAS+ indices ``xs``, each float32 [ny, nz] (Hounsfield units).

        One contiguous slab (min(xs)..max(xs)) is read from the file, so a gzipped NIfTI is
        decompressed once per scan, not once per slice.
        """
        axis = int(np.flatnonzero(self._ornt[:, 0] == 0)[0])
        size = self._ct.shape[axis]
        flipped = self._ornt[axis, 1] < 0
        lo, hi = min(xs), max(xs)
        start, stop = (size - 1 - hi, size - lo) if flipped else (lo, hi + 1)
        slicer = [slice(None)] * 3
        slicer[axis] = slice(start, stop)
        slab = np.asarray(self._ct.dataobj[tuple(slicer)], dtype=np.float32)
        slab = nio.apply_orientation(slab, self._ornt)  # RAS+: slab[k] is x = lo + k
        return {x: slab[x - lo] for x in xs}


@dataclass(frozen=True)
class SliceBox:
    """A vertebra on one PNG: VerSe label, XYXY box (PNG pixels), mask area (PNG pixels^2)."""

    label: int
    box: Tuple[float, float, float, float]
    area: float


def load_scan(scan: VerseScan) -> CanonicalScan:
    """Read the mask (whole) and the CT header; check they share a voxel grid.

    Raises:
        ValueError: naming the file(s): not 3-D, CT/mask grids differ, non-integer labels.
    """
    ct, mask_img = _load_nifti(scan.ct_path), _load_nifti(scan.mask_path)
    if ct.shape != mask_img.shape or not np.allclose(ct.affine, mask_img.affine, atol=1e-2):
        raise ValueError(
            f"{scan.mask_path} (shape {mask_img.shape}) is not on the voxel grid of "
            f"{scan.ct_path} (shape {ct.shape}); the affines differ by "
            f"{np.abs(ct.affine - mask_img.affine).max():.3g}. VerSe masks share the CT grid: "
            "resample the mask onto the CT first."
        )
    labels = np.asanyarray(mask_img.dataobj)
    if not np.issubdtype(labels.dtype, np.integer):
        rounded = np.rint(labels)
        if not np.array_equal(rounded, labels):
            raise ValueError(f"{scan.mask_path} holds non-integer labels; expected VerSe labels.")
        labels = rounded
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.int16).max):
        raise ValueError(f"{scan.mask_path} holds labels {labels.min()}..{labels.max()}; "
                         "expected VerSe labels 0..28.")
    ornt = nio.io_orientation(ct.affine)
    zooms = nib.affines.voxel_sizes(ct.affine)
    spacing = tuple(float(zooms[int(np.flatnonzero(ornt[:, 0] == k)[0])]) for k in range(3))
    mask = np.ascontiguousarray(nio.apply_orientation(labels.astype(np.int16), ornt))
    return CanonicalScan(scan=scan, mask=mask, spacing=spacing, _ct=ct, _ornt=ornt)


def read_centroids(path: str) -> Tuple[Tuple[str, str, str], Dict[int, Tuple[float, float, float]]]:
    """A VerSe centroid json: (direction axcodes, {label: (X, Y, Z)}); NaN entries dropped.

    The format is a list whose first entry is ``{"direction": ["P", "I", "R"]}`` and whose
    others are ``{"label": k, "X": .., "Y": .., "Z": ..}`` (voxel coordinates along the axes the
    direction codes name).

    Raises:
        ValueError: naming ``path``, when the json does not have that shape.
    """
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot read centroid file {path}: {e}") from e
    if not isinstance(entries, list) or not entries or "direction" not in entries[0]:
        raise ValueError(f"{path}: expected a list starting with {{\"direction\": [..3 axis "
                         "codes..]}, as VerSe's *_seg-subreg_ctd.json files.")
    direction = tuple(str(code).upper() for code in entries[0]["direction"])
    try:
        axes = sorted(nio.axcodes2ornt(direction)[:, 0].tolist())
    except ValueError:
        axes = []
    if axes != [0, 1, 2]:
        raise ValueError(f"{path}: direction {direction} is not 3 axis codes, one each from "
                         "L/R, P/A and I/S.")
    centroids = {}
    for entry in entries[1:]:
        try:
            point = tuple(float(entry[axis]) for axis in ("X", "Y", "Z"))
            label = int(entry["label"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: centroid entry {entry} lacks label/X/Y/Z ({e}).") from e
        if all(np.isfinite(point)):
            centroids[label] = point
    return direction, centroids


def sagittal_centre(
    volume: CanonicalScan, centroid_path: Optional[str], *, tolerance_voxels: float = 2.0
) -> Tuple[float, str]:
    """The mid-sagittal x (RAS+ voxel index), and where it came from.

    The mean left-right coordinate of the centroids whose label has voxels in the mask and
    which lie within that label's x-extent (+- ``tolerance_voxels``); VerSe's convention for a
    flipped axis (``size - c``) is followed. When there is no centroid file, or fewer than
    half of the centroids agree with the mask (e.g. coordinates in another voxel size), the
    centre of all labelled voxels is used instead.

    Returns:
        (x, source) with source "centroids", "mask" or "mask (centroids disagree)".
    """
    per_x = (volume.mask > 0).sum(axis=(1, 2))
    if not per_x.any():
        raise ValueError(f"{volume.scan.mask_path} has no labelled voxel.")
    mask_centre = float(np.average(np.arange(volume.mask.shape[0]), weights=per_x))
    if centroid_path is None:
        return mask_centre, "mask"
    direction, centroids = read_centroids(centroid_path)
    ornt = nio.axcodes2ornt(direction)
    axis = int(np.flatnonzero(ornt[:, 0] == 0)[0])
    nx = volume.mask.shape[0]
    extents = ndimage.find_objects(volume.mask)  # per label: its bounding slices
    agreeing, checked = [], 0
    for label, point in centroids.items():
        x = point[axis] if ornt[axis, 1] > 0 else nx - point[axis]
        if not 0 < label <= len(extents) or extents[label - 1] is None:
            continue
        checked += 1
        present = extents[label - 1][0]
        if present.start - tolerance_voxels <= x <= present.stop - 1 + tolerance_voxels:
            agreeing.append(x)
    if checked and 2 * len(agreeing) >= checked:
        return float(np.mean(agreeing)), "centroids"
    return mask_centre, "mask (centroids disagree)"


def slice_positions(
    centre: float, num_slices: int, step_mm: float, spacing_x: float, size_x: int
) -> List[int]:
    """``num_slices`` x indices spaced ``step_mm`` apart, centred on ``centre``, in range, unique."""
    offsets = (np.arange(num_slices) - (num_slices - 1) / 2.0) * step_mm / spacing_x
    positions = np.rint(centre + offsets).astype(int)
    return sorted({int(x) for x in positions if 0 <= x < size_x})


def render_slice(
    ct_slice: np.ndarray, spacing_yz: Sequence[float], *, window: Tuple[float, float], spacing_mm: float
) -> Tuple[np.ndarray, Tuple[float, float]]:
    """A CT slice [ny, nz] as an upright uint8 PNG array, and the (row, column) scale factors.

    Args:
        ct_slice: Hounsfield units, RAS+ [ny, nz].
        spacing_yz: (sy, sz) voxel sizes in mm.
        window: (center, width) in HU; values outside map to 0 / 255.
        spacing_mm: the output pixel size (both axes).
    Returns:
        (image [H, W] uint8, (row_scale, col_scale)) where H = round(nz * sz / spacing_mm) and
        a native voxel row/column i spans [i * scale, (i + 1) * scale) output pixels.
    """
    center, width = window
    upright = ct_slice[::-1, ::-1].T  # rows: superior -> inferior, columns: anterior -> posterior
    low = center - width / 2.0
    upright = np.nan_to_num(upright, nan=low, posinf=low + width, neginf=low)
    scaled = np.clip((upright - low) / width, 0.0, 1.0) * 255.0
    out_shape = _output_shape(upright.shape, (spacing_yz[1], spacing_yz[0]), spacing_mm)
    factors = (out_shape[0] / upright.shape[0], out_shape[1] / upright.shape[1])
    resized = ndimage.zoom(scaled, factors, order=1, grid_mode=True, mode="nearest")
    return np.clip(np.rint(resized), 0, 255).astype(np.uint8), factors


def slice_boxes(mask_slice: np.ndarray, scales: Tuple[float, float], min_area: float) -> List[SliceBox]:
    """One box per label on a mask slice [ny, nz] whose area is at least ``min_area`` px^2.

    Args:
        mask_slice: RAS+ labels of one sagittal slice.
        scales: (row_scale, col_scale) from :func:`render_slice`.
        min_area: minimum mask area in output pixels; smaller fragments are left out.
    Returns:
        boxes sorted by label (cranial to caudal, T13 = 28 last).
    """
    upright = mask_slice[::-1, ::-1].T
    counts = np.bincount(upright.ravel())
    boxes = []
    for index, extent in enumerate(ndimage.find_objects(upright)):
        area = counts[index + 1] * scales[0] * scales[1] if extent is not None else 0.0
        if extent is None or area < min_area:
            continue
        rows, cols = extent
        box = (cols.start * scales[1], rows.start * scales[0], cols.stop * scales[1], rows.stop * scales[0])
        boxes.append(SliceBox(index + 1, tuple(float(v) for v in box), float(area)))
    return boxes


def _output_shape(shape: Sequence[int], spacing: Sequence[float], spacing_mm: float) -> Tuple[int, int]:
    return tuple(max(1, int(round(n * s / spacing_mm))) for n, s in zip(shape, spacing))


def _load_nifti(path: str):
    try:
        image = nib.load(path)
    except Exception as e:  # nibabel raises several types for unreadable files
        raise ValueError(f"Cannot read NIfTI {path}: {e}") from e
    if len(image.shape) == 4 and image.shape[3] == 1:
        image = nib.funcs.squeeze_image(image)
    if len(image.shape) != 3:
        raise ValueError(f"{path} has shape {image.shape}; a 3-D volume is expected.")
    return image
