"""A patient's spine (sizes in mm, sagittal curvature) and the run of it that is in view.

:func:`sample_spine` draws the whole C1..L5 (rarely L6) column with size jitter and random
cervical lordosis, thoracic kyphosis and lumbar lordosis. :func:`sample_run` picks the
contiguous run in view and the pixel scale; :func:`place_run` lays the run out along the
curved centreline (with the lesions' deformations), tilts it and fits it into the image.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .config import PhantomConfig
from .shapes import Pose, rotation
from .vertebra import vertebra_parts

__all__ = ["Deformation", "Spine", "View", "place_run", "sample_run", "sample_spine"]

_L6 = 24
# Adult sizes per level C1..C7, T1..T12, L1..L6 (mm): posterior body height, body depth,
# disc height below (C1: the offset that puts the atlas around the dens), anterior/posterior.
_BASE_HEIGHT = np.r_[
    [9, 16, 13, 13.5, 13.5, 14, 14.5], np.linspace(16, 24, 12), [25, 26, 27, 27, 26, 26]
]
_BASE_DEPTH = np.r_[
    [16, 16, 15, 15.5, 16, 16.5, 17], np.linspace(17, 30, 12), [32, 33, 34, 35, 35, 35]
]
_BASE_GAP = np.r_[[2, 4.5, 4.5, 4.5, 4.5, 4.5, 5], np.linspace(4, 6.5, 12), [8, 9, 10, 11, 11, 10]]
_ANTERIOR_RATIO = np.r_[np.ones(7), np.full(12, 0.94), [1.0, 1.0, 1.0, 1.04, 1.1, 1.08]]
_LUMBAR_BEND_WEIGHTS = np.array([0.15, 0.2, 0.25, 0.35, 0.3])  # L1/L2 .. L5/L6
_VIEW_MM = (190.0, 300.0)  # range of the image height in mm (sets the pixel scale)
_ANCHOR_PROBABILITIES = (0.2, 0.25, 0.55)  # runs from C1, runs to the last lumbar, free runs
_FILL = (0.6, 0.95)  # short runs are magnified to fill this fraction of the image height
_MIN_VIEW_MM = 135.0  # ... but the image height never covers less than this
_MARGIN_PX = 2.0


@dataclass(frozen=True)
class Spine:
    """One patient's column, one entry per level (template index order, top to bottom).

    Attributes:
        levels: level indices (0..23, plus 24 when the patient has an L6).
        height: posterior body heights, mm.
        anterior_ratio: anterior / posterior body height.
        depth: body depths, mm.
        gap: disc heights below each body, mm.
        bend: change of the spine angle from each level to the next, radians ([n - 1]).
    """

    levels: np.ndarray
    height: np.ndarray
    anterior_ratio: np.ndarray
    depth: np.ndarray
    gap: np.ndarray
    bend: np.ndarray


@dataclass(frozen=True)
class Deformation:
    """Lesion-driven changes to the run, one entry per vertebra in view (top to bottom).

    Attributes:
        anterior: factor on the anterior body height (wedge collapse).
        posterior: factor on the posterior body height.
        gap: factor on the disc height below the vertebra (disc space narrowing).
        slip: anterior displacement of this vertebra and all above it, in body depths.
    """

    anterior: np.ndarray
    posterior: np.ndarray
    gap: np.ndarray
    slip: np.ndarray

    @classmethod
    def none(cls, count: int) -> "Deformation":
        """No deformation for a run of ``count`` vertebrae."""
        return cls(np.ones(count), np.ones(count), np.ones(count), np.zeros(count))


@dataclass(frozen=True)
class View:
    """The run placed in the image (pixels).

    Attributes:
        poses: one pose per vertebra in view, top to bottom, image pixel frame.
        field: (top, bottom) rows of the exposed field; rows outside are collimated.
        skull: whether the skull base lies above the run (C1 in view).
        sacrum: whether the sacrum lies below the run (the last lumbar level in view).
    """

    poses: List[Pose]
    field: Tuple[int, int]
    skull: bool
    sacrum: bool


def sample_spine(rng: np.random.Generator, l6_probability: float) -> Spine:
    """A random column: per-level size jitter and random regional curvature."""
    count = _L6 + 1 if rng.random() < l6_probability else _L6
    jitter = rng.normal(0.0, [[0.04], [0.04], [0.1]], size=(3, count))
    lordosis_c, kyphosis, lordosis_l = np.deg2rad(rng.uniform([10, 20, 30], [40, 55, 60]))
    bend = np.zeros(count - 1)
    bend[1:7] = lordosis_c / 6  # C2/C3 .. C7/T1
    bend[7:18] = -kyphosis / 11  # T1/T2 .. T11/T12
    bend[19:] = lordosis_l * _LUMBAR_BEND_WEIGHTS[: count - 20]
    bend += np.deg2rad(rng.normal(0.0, 1.5, size=count - 1))
    return Spine(
        levels=np.arange(count),
        height=_BASE_HEIGHT[:count] * np.exp(jitter[0]),
        anterior_ratio=_ANTERIOR_RATIO[:count],
        depth=_BASE_DEPTH[:count] * np.exp(jitter[1]),
        gap=_BASE_GAP[:count] * np.exp(jitter[2]),
        bend=bend,
    )


def sample_run(
    rng: np.random.Generator, cfg: PhantomConfig, spine: Spine
) -> Tuple[int, int, float]:
    """Choose the contiguous run in view and the pixel scale.

    Like clinical views, a run is anchored at C1 (a cervical view), at the last lumbar level
    (a lumbar view) or starts at a uniform level, with a uniform count in
    [min_vertebrae, max_vertebrae]. It loses vertebrae at its free end until it fits the
    image height at the sampled scale (never below min_vertebrae); a run that fills less
    than a random 60-95% of the height is then magnified up to that.

    Returns:
        (start, stop, scale): template slice [start, stop) and pixels per mm.
    """
    total = len(spine.levels)
    count = int(rng.integers(cfg.min_vertebrae, cfg.max_vertebrae + 1))
    anchor = rng.choice(("top", "bottom", "free"), p=_ANCHOR_PROBABILITIES)
    if anchor == "bottom":
        start, stop = max(0, total - count), total
    else:
        start = 0 if anchor == "top" else int(rng.integers(0, total - cfg.min_vertebrae + 1))
        stop = min(start + count, total)
    scale = cfg.image_height / rng.uniform(*_VIEW_MM)
    usable = cfg.image_height - 2 * _MARGIN_PX
    while stop - start > cfg.min_vertebrae and _needed_height(spine, start, stop) * scale > usable:
        start, stop = (start + 1, stop) if anchor == "bottom" else (start, stop - 1)
    magnified = rng.uniform(*_FILL) * usable / _needed_height(spine, start, stop)
    return start, stop, min(max(scale, magnified), cfg.image_height / _MIN_VIEW_MM)


def place_run(
    rng: np.random.Generator,
    cfg: PhantomConfig,
    spine: Spine,
    run: Tuple[int, int, float],
    deformation: Optional[Deformation] = None,
) -> View:
    """Lay out the run with its deformation, tilt it and fit it into the image.

    The scale shrinks below the sampled one only when the tilted run would not fit; the run
    is shifted to a random position in the free space.
    """
    start, stop, scale = run
    poses = _layout(spine, start, stop, deformation or Deformation.none(stop - start))
    tilt = np.deg2rad(rng.uniform(-10.0, 10.0))
    poses = [pose.rotated(tilt) for pose in poses]
    (x0, y0), (x1, y1) = _bounds(poses)
    top, bottom = _context(spine, start, stop)
    need_w, need_h = x1 - x0, y1 - y0 + top + bottom
    height, width = cfg.size
    scale = min(scale, (height - 2 * _MARGIN_PX) / need_h, (width - 2 * _MARGIN_PX) / need_w)
    free = np.array([width - need_w * scale, height - need_h * scale]) - 2 * _MARGIN_PX
    corner = _MARGIN_PX + rng.uniform(0.0, 1.0, size=2) * np.maximum(free, 0.0)
    offset = corner - np.array([x0, y0 - top]) * scale
    placed = [pose.scaled(scale, offset) for pose in poses]
    extra = rng.uniform(1.0, 5.0, size=2)
    field_top = int(max(0, np.floor(corner[1] - extra[0])))
    field_bottom = int(min(height, np.ceil(corner[1] + need_h * scale + extra[1])))
    sacrum = stop == len(spine.levels)
    return View(placed, (field_top, field_bottom), skull=start == 0, sacrum=sacrum)


def _layout(spine: Spine, start: int, stop: int, deformation: Deformation) -> List[Pose]:
    """Poses (mm) along the curved centreline, rotated so the end-to-end chord is vertical."""
    index = np.arange(start, stop)
    posterior = spine.height[index] * deformation.posterior
    anterior = spine.height[index] * spine.anterior_ratio[index] * deformation.anterior
    gap = spine.gap[index] * deformation.gap
    angles = np.r_[0.0, np.cumsum(spine.bend[start : stop - 1])]
    mean_height = (anterior + posterior) / 2
    centers = [np.zeros(2)]
    for i in range(len(index) - 1):  # half a body and half a disc along each tangent
        step = rotation(angles[i])[:, 1] * (mean_height[i] + gap[i]) / 2
        step += rotation(angles[i + 1])[:, 1] * (gap[i] + mean_height[i + 1]) / 2
        centers.append(centers[-1] + step)
    slip = np.cumsum((deformation.slip * spine.depth[index])[::-1])[::-1]
    poses = [
        Pose(int(spine.levels[k]), centers[i] - slip[i] * rotation(angles[i])[:, 0],
             float(angles[i]), float(spine.depth[k]), float(posterior[i]), float(anterior[i]),
             float(gap[i]))
        for i, k in enumerate(index)
    ]
    chord = poses[-1].center - poses[0].center
    return [pose.rotated(-np.arctan2(chord[0], chord[1])) for pose in poses]


def _bounds(poses: List[Pose]) -> Tuple[np.ndarray, np.ndarray]:
    """(min corner, max corner) of every vertebra part polygon of ``poses``."""
    points = np.concatenate([part.polygon for pose in poses for part in vertebra_parts(pose)])
    return points.min(axis=0), points.max(axis=0)


def _context(spine: Spine, start: int, stop: int) -> Tuple[float, float]:
    """Room (mm) kept above and below the run: skull base above C1, sacrum below L5/L6."""
    top = 0.9 * spine.depth[0] if start == 0 else 0.0
    bottom = 1.0 * spine.depth[stop - 1] if stop == len(spine.levels) else 0.0
    return top, bottom


def _needed_height(spine: Spine, start: int, stop: int) -> float:
    """The height in mm the untilted, undeformed run needs, context included."""
    (_, y0), (_, y1) = _bounds(_layout(spine, start, stop, Deformation.none(stop - start)))
    top, bottom = _context(spine, start, stop)
    return y1 - y0 + top + bottom
