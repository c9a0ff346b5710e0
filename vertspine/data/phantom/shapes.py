"""Polygon geometry and rasterisation shared by every phantom drawing module.

Image frame: continuous (x, y) in pixels, x to the right, y down, origin at the top-left
corner of the image; pixel (column i, row j) covers [i, i+1) x [j, j+1), as in COCO polygons
and detectron2 boxes. A *local frame* (u, v) is attached to each vertebra: u points posterior
(image right when the spine is upright), v points caudal (image down); see :class:`Pose`.
"""
import warnings
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

__all__ = [
    "Pose",
    "band",
    "chaikin",
    "ellipse",
    "mask_bbox",
    "quad",
    "rasterize",
    "rotation",
]


def rotation(angle: float) -> np.ndarray:
    """The 2x2 matrix mapping local (u, v) offsets to image (x, y) offsets at ``angle``.

    ``angle`` (radians) is the tilt of the v axis from image-down towards image-right:
    u maps to (cos a, -sin a), v to (sin a, cos a). Composition adds angles.
    """
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, s], [-s, c]])


@dataclass(frozen=True)
class Pose:
    """Where a vertebra sits and how big it is (lengths in the frame's units: mm or px).

    Attributes:
        level: index into ``VERTEBRA_LEVELS`` (category id - 1).
        center: (x, y) of the vertebral body centre.
        angle: tilt of the local v (caudal) axis, radians (see :func:`rotation`).
        depth: anterior-posterior depth of the body.
        height: posterior height of the body.
        anterior_height: anterior height of the body (smaller when wedged).
        gap: disc height below the body, to the next vertebra of the spine.
    """

    level: int
    center: np.ndarray
    angle: float
    depth: float
    height: float
    anterior_height: float
    gap: float

    def to_frame(self, uv: np.ndarray) -> np.ndarray:
        """Map local (u, v) points [N, 2] to the pose's frame (x, y) [N, 2]."""
        return self.center + np.asarray(uv, dtype=float) @ rotation(self.angle).T

    def rotated(self, angle: float) -> "Pose":
        """The pose after rotating its whole frame by ``angle`` about the origin."""
        return replace(self, center=rotation(angle) @ self.center, angle=self.angle + angle)

    def scaled(self, scale: float, offset: Sequence[float]) -> "Pose":
        """The pose after ``x -> scale * x + offset`` (e.g. mm to image pixels)."""
        return replace(
            self,
            center=self.center * scale + np.asarray(offset, dtype=float),
            depth=self.depth * scale,
            height=self.height * scale,
            anterior_height=self.anterior_height * scale,
            gap=self.gap * scale,
        )


def quad(u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """The axis-aligned rectangle [u0, u1] x [v0, v1] as 4 corners, clockwise on screen."""
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=float)


def ellipse(center: Sequence[float], radii: Sequence[float], points: int = 24) -> np.ndarray:
    """An axis-aligned ellipse sampled at ``points`` vertices."""
    t = np.linspace(0.0, 2.0 * np.pi, points, endpoint=False)
    return np.stack([center[0] + radii[0] * np.cos(t), center[1] + radii[1] * np.sin(t)], 1)


def chaikin(polygon: np.ndarray, ratio: float = 0.2, iterations: int = 2) -> np.ndarray:
    """Round a closed polygon's corners by Chaikin corner cutting.

    Args:
        polygon: [N, 2] vertices of a closed polygon.
        ratio: fraction of each edge cut off at both ends per iteration (0 < ratio < 0.5).
        iterations: how many times to cut.
    Returns:
        [N * 2**iterations, 2] vertices.
    """
    points = np.asarray(polygon, dtype=float)
    for _ in range(iterations):
        following = np.roll(points, -1, axis=0)
        near = (1 - ratio) * points + ratio * following
        far = ratio * points + (1 - ratio) * following
        points = np.stack([near, far], 1).reshape(-1, 2)
    return points


def band(polyline: np.ndarray, width: float) -> np.ndarray:
    """The closed polygon of a stroke of ``width`` along an open ``polyline`` [N, 2]."""
    points = np.asarray(polyline, dtype=float)
    tangents = np.gradient(points, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True) + 1e-9
    normals = np.stack([-tangents[:, 1], tangents[:, 0]], 1) * (width / 2.0)
    return np.concatenate([points + normals, (points - normals)[::-1]])


def rasterize(polygons: Sequence[np.ndarray], height: int, width: int) -> np.ndarray:
    """The union of image-frame polygons as a bool mask [height, width].

    Uses pycocotools, the rasteriser detectron2 and the COCO API apply to polygon
    annotations, so a mask drawn here equals the mask decoded from the same polygons.
    """
    flat = [np.asarray(p, dtype=float).ravel().tolist() for p in polygons]
    if not flat:
        return np.zeros((height, width), dtype=bool)
    rle = mask_utils.merge(mask_utils.frPyObjects(flat, height, width))
    with warnings.catch_warnings():  # pycocotools' decode under numpy 2: a harmless copy= warning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def mask_bbox(mask: np.ndarray) -> Optional[List[float]]:
    """The tight XYXY box of a bool mask in pixel-edge coordinates (x1 = last column + 1).

    Returns:
        [x0, y0, x1, y1] as floats, or None for an empty mask.
    """
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return None
    y0, y1 = np.flatnonzero(rows)[[0, -1]]
    x0, x1 = np.flatnonzero(cols)[[0, -1]]
    return [float(x0), float(y0), float(x1 + 1), float(y1 + 1)]
