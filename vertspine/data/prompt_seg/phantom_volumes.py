"""Synthetic CT-like volumes with several labelled 3D structures, for box-prompted segmentation.

A volume is an axial stack ``[D, H, W]`` (slice, row, column) with anisotropic spacing (about
2.5 mm between slices, 0.8 mm in-plane; every size below is in mm, so shapes stay round in the
patient whatever the spacing). Contents, in Hounsfield units:

* air (-1000) around an elliptic body cylinder of soft tissue (about 40 HU, slowly varying);
* 3 to 6 labelled structures inside the body, each of one kind: an ellipsoid (rotated in-plane),
  a tube (a curved cylinder running along several slices, like a vessel) or an irregular blob
  (a thresholded smooth random field inside a sphere), with its own HU (90..300);
* partial-volume blur and gaussian noise (10..25 HU); values stored as int16.

Labels are 1..K in creation order; a later structure overwrites an earlier one where they
overlap, and a structure left with fewer than :data:`MIN_VOXELS` voxels loses its label (its
voxels stay as unlabelled tissue; labels stay 1..K without gaps). The same generator
(``np.random.Generator``) state gives the same volume.
"""
from typing import Callable, List, Tuple

import numpy as np
from scipy import ndimage

__all__ = ["MIN_VOXELS", "generate_phantom_volume"]

MIN_VOXELS = 50  # a structure smaller than this after overlaps is dropped
_AIR_HU, _TISSUE_HU = -1000.0, 40.0
_BLUR_MM = 0.5  # partial-volume blur, gaussian sigma in mm

Grid = Tuple[np.ndarray, np.ndarray, np.ndarray]  # z, y, x in mm, each broadcastable to [D, H, W]


def _ellipsoid(rng: np.random.Generator, grid: Grid, centre: np.ndarray,
               spacing: np.ndarray) -> np.ndarray:
    z, y, x = grid
    a, b = rng.uniform(6, 16, size=2)  # in-plane semi-axes, mm
    c = rng.uniform(8, 25)  # along z, mm
    angle = rng.uniform(0, np.pi)
    u = (x - centre[2]) * np.cos(angle) + (y - centre[1]) * np.sin(angle)
    v = -(x - centre[2]) * np.sin(angle) + (y - centre[1]) * np.cos(angle)
    return (u / a) ** 2 + (v / b) ** 2 + ((z - centre[0]) / c) ** 2 <= 1


def _tube(rng: np.random.Generator, grid: Grid, centre: np.ndarray,
          spacing: np.ndarray) -> np.ndarray:
    z, y, x = grid
    radius = rng.uniform(3, 6)
    half_length = rng.uniform(15, 40)
    amplitude, period, phase = rng.uniform(3, 12), rng.uniform(40, 120), rng.uniform(0, 2 * np.pi)
    path_x = centre[2] + amplitude * np.sin(2 * np.pi * z / period + phase)
    path_y = centre[1] + amplitude * np.cos(2 * np.pi * z / period + phase) / 2
    return (((x - path_x) ** 2 + (y - path_y) ** 2) <= radius ** 2) & \
        (np.abs(z - centre[0]) <= half_length)


def _blob(rng: np.random.Generator, grid: Grid, centre: np.ndarray,
          spacing: np.ndarray) -> np.ndarray:
    z, y, x = grid
    radius = rng.uniform(8, 16)
    shape = np.broadcast_shapes(z.shape, y.shape, x.shape)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=radius / 3 / spacing)
    field /= field.std() + 1e-12
    distance = np.sqrt(((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2))
    return distance / radius + 0.3 * field <= 1


_SHAPES: List[Callable[[np.random.Generator, Grid, np.ndarray, np.ndarray], np.ndarray]] = [
    _ellipsoid, _tube, _blob]


def generate_phantom_volume(rng: np.random.Generator, depth: int, size: int,
                            spacing: Tuple[float, float, float]
                            ) -> Tuple[np.ndarray, np.ndarray]:
    """One volume and its labels (contents in the module docstring).

    Args:
        rng: the random generator (the volume is a function of its state).
        depth: D slices.
        size: H = W pixels in-plane.
        spacing: mm per voxel along (D, H, W).
    Returns:
        (int16 [D, H, W] Hounsfield units, uint16 [D, H, W] labels 0..K, K >= 1).
    """
    spacing = np.asarray(spacing, np.float64)
    z = (np.arange(depth) * spacing[0])[:, None, None]
    y = (np.arange(size) * spacing[1])[None, :, None]
    x = (np.arange(size) * spacing[2])[None, None, :]
    extent = np.array([depth * spacing[0], size * spacing[1], size * spacing[2]])
    body_axes = extent[1:] * rng.uniform([0.38, 0.30], [0.46, 0.40])  # semi-axes y, x in mm
    body = (((y - extent[1] / 2) / body_axes[0]) ** 2
            + ((x - extent[2] / 2) / body_axes[1]) ** 2 <= 1)
    body = np.broadcast_to(body, (depth, size, size))
    shading = 15 * np.sin(2 * np.pi * (x / rng.uniform(60, 120) + y / rng.uniform(60, 120)))
    volume = np.where(body, _TISSUE_HU + shading, _AIR_HU)
    labels = np.zeros((depth, size, size), np.uint16)
    for label in range(1, int(rng.integers(3, 7)) + 1):
        # centres inside the inner half of the body, away from the first and last slices
        angle, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.3))
        centre = np.array([rng.uniform(0.25, 0.75) * extent[0],
                           extent[1] / 2 + r * body_axes[0] * np.sin(angle),
                           extent[2] / 2 + r * body_axes[1] * np.cos(angle)])
        shape = _SHAPES[int(rng.integers(len(_SHAPES)))](rng, (z, y, x), centre, spacing) & body
        labels[shape] = label
        volume = np.where(shape, rng.uniform(90, 300), volume)
    labels = _drop_small(labels)
    volume = ndimage.gaussian_filter(volume, sigma=_BLUR_MM / spacing)
    volume = volume + rng.normal(0, rng.uniform(10, 25), size=volume.shape)
    return np.clip(np.round(volume), -1024, 3071).astype(np.int16), labels


def _drop_small(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..K without the structures of fewer than MIN_VOXELS voxels."""
    counts = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)
    kept = [v for v in range(1, len(counts)) if counts[v] >= MIN_VOXELS]
    if not kept:
        raise RuntimeError("Phantom volume without any structure; use another seed.")
    lookup = np.zeros(len(counts), np.uint16)
    lookup[kept] = np.arange(1, len(kept) + 1)
    return lookup[labels]
