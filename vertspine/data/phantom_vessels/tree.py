"""Vessel tree geometry: smooth branching centre lines with shrinking radii, and a few loops.

Frame: millimetres on the voxel grid, ``x = index * spacing`` per array axis (voxel centres,
nibabel's convention before the affine's rotation and translation); the box is
``[0, (shape - 1) * spacing]``. Radii are in mm. A tree is grown breadth first from one root
that enters through a face of the box:

* every branch is a random walk of unit steps (``step`` mm) whose direction turns by a small
  random amount each step (``tortuosity``), mirrored at the walls so the tube stays inside;
* its radius tapers by up to ``taper`` along it; its length is ``length`` steps;
* at its end it bifurcates: flow fractions ``f`` and ``1 - f`` give Murray's-law radii
  ``r * f ** (1/3)`` (never below ``min_radius``), the larger child turning less;
* a branch that would come within ``CLEARANCE`` steps of another branch (its parent and
  siblings excepted near its junction) stops there without children: branches do not cross;
* growth stops when the tube volume reaches ``budget_mm3`` (or the depth limit);
* loops (anastomoses) join two branches that are neither the same nor parent and child with a
  bent tube (a quadratic Bezier curve), each adding one cycle (Betti-1) to the tree.

Rasterisation (:func:`rasterize_tubes`) takes the union of per-segment tapered capsules: a voxel
is inside when its centre lies within ``r(t)`` of a segment (``t`` its projection, ``r``
linear along the segment). The soft occupancy ramps over one fine voxel around that surface,
so ``occupancy >= 0.5`` is exactly the label.
"""
from collections import deque
from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

__all__ = ["TreeParams", "Tube", "capsule_windows", "grow_vessel_tree", "rasterize_tubes"]


@dataclass(frozen=True)
class Tube:
    """One centre line: points [N, 3] mm and radii [N] mm; ``depth`` 0 for the root, -1 a loop."""

    points: np.ndarray
    radii: np.ndarray
    depth: int
    parent: int = -1  # index of the parent tube in the tree's list, -1 for the root and loops


@dataclass(frozen=True)
class TreeParams:
    """Drawn geometry of one tree (units: mm unless stated)."""

    root_radius: float
    min_radius: float
    step: float  # centre-line sampling, the fine voxel size
    budget_mm3: float  # tube volume at which growth stops
    num_loops: int
    tortuosity: float = 0.18  # rad: std of the per-step direction change
    taper: Tuple[float, float] = (0.8, 1.0)  # end radius / start radius of a branch
    length: Tuple[float, float] = (10.0, 24.0)  # branch length, steps
    angles_deg: Tuple[Tuple[float, float], Tuple[float, float]] = ((15, 40), (35, 75))
    max_depth: int = 7  # generations of branches at most


CLEARANCE = 2.0  # steps kept free around a branch (26-connected voxels must not touch)
SEGMENT_STEPS = 2  # centre-line steps per rasterised segment (the lines are smooth)
_DIAGONALS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)
_PROBES = np.concatenate([np.zeros((1, 3)), np.eye(3), -np.eye(3), _DIAGONALS])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _rotate(d: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """``d`` rotated by ``angle`` rad about the unit ``axis`` (Rodrigues)."""
    return (d * np.cos(angle) + np.cross(axis, d) * np.sin(angle)
            + axis * np.dot(axis, d) * (1 - np.cos(angle)))


def _perpendicular(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector perpendicular to the unit vector ``d``."""
    v = rng.normal(size=3)
    return _unit(v - np.dot(v, d) * d)


def _walk(start: np.ndarray, direction: np.ndarray, r0: float, length: float, p: TreeParams,
          grid: "_Grid", own: Tuple[int, ...], family: Tuple[int, ...], rng: np.random.Generator
          ) -> Tuple[Tube, bool]:
    """A branch from ``start`` along ``direction``, mirrored at the box walls.

    Args:
        own: claims the branch may enter (free voxels and its own).
        family: claims it may enter near its junction (``own``, its parent and siblings).
    Returns:
        the branch, and whether it ran its full length (False: it stopped before entering a
        claim it may not enter, so it ends without children).
    """
    n = max(2, int(round(length / p.step)) + 1)
    r1 = r0 * rng.uniform(*p.taper)
    radii = np.maximum(np.linspace(r0, r1, n), p.min_radius)
    skip = int(np.ceil(2.0 * r0 / p.step)) + 1  # steps leaving the junction, unchecked
    leave = int(np.ceil(4.0 * r0 / p.step)) + 2 * CLEARANCE  # steps its family is allowed
    points = np.empty((n, 3))
    points[0], d = start, _unit(direction)
    for i in range(1, n):
        d = _unit(d + p.tortuosity * rng.normal(size=3))
        margin = radii[i] + p.step
        nxt = points[i - 1] + p.step * d
        low, high = nxt < margin, nxt > grid.extent - margin
        d = np.where((low & (d < 0)) | (high & (d > 0)), -d, d)
        points[i] = np.clip(points[i - 1] + p.step * d, 0.0, grid.extent)
        if i > skip and not grid.is_clear(points[i], radii[i], family if i <= leave else own):
            return Tube(points[:i], radii[:i], depth=0), False
    return Tube(points, radii, depth=0), True


class _Grid:
    """The voxel grid: the soft occupancy of the tubes added so far, and which tube claims each
    voxel (within its radius + ``CLEARANCE`` steps)."""

    def __init__(self, shape: Sequence[int], spacing: Sequence[float]):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.width = float(self.spacing.min())
        self.extent = (np.asarray(self.shape) - 1) * self.spacing
        self.owner = np.full(self.shape, -1, np.int32)
        self.occupancy = np.zeros(self.shape, np.float32)

    def owner_at(self, point: np.ndarray) -> int:
        index = np.clip(np.round(point / self.spacing).astype(int), 0, np.asarray(self.shape) - 1)
        return int(self.owner[tuple(index)])

    def is_clear(self, point: np.ndarray, radius: float, allowed: Tuple[int, ...]) -> bool:
        """Whether a ball of ``radius`` at ``point`` (its centre and 14 surface points) lies in
        no claim but those of ``allowed``."""
        index = np.clip(np.round((point + radius * _PROBES) / self.spacing).astype(int), 0,
                        np.asarray(self.shape) - 1)
        return bool(np.isin(self.owner[tuple(index.T)], allowed).all())

    def add(self, tube: Tube, index: int) -> None:
        """Rasterise ``tube`` into the occupancy and claim its zone for ``index``."""
        clearance = CLEARANCE * self.width
        for window, t, distance, (r0, r1) in capsule_windows(
                tube, self.shape, self.spacing, reach=float(tube.radii.max()) + clearance):
            radius = r0 + t * (r1 - r0)
            soft = np.clip((radius - distance) / self.width + 0.5, 0.0, 1.0).astype(np.float32)
            np.maximum(self.occupancy[window], soft, out=self.occupancy[window])
            zone = self.owner[window]
            zone[(distance <= radius + clearance) & (zone < 0)] = index


def grow_vessel_tree(params: TreeParams, shape: Sequence[int], spacing: Sequence[float],
                     rng: np.random.Generator) -> Tuple[List[Tube], np.ndarray]:
    """Grow one tree with loops on the grid ``shape`` x ``spacing`` (box in the module docstring).

    Returns:
        the branches (root first, breadth-first order) followed by the loop tubes, and their
        soft occupancy (as :func:`rasterize_tubes`).
    """
    grid = _Grid(shape, spacing)
    axis, side = int(rng.integers(3)), int(rng.integers(2))
    start = rng.uniform(0.25, 0.75, size=3) * grid.extent
    start[axis] = side * grid.extent[axis]
    inward = np.zeros(3)
    inward[axis] = 1.0 - 2.0 * side
    direction = _unit(inward + 0.4 * rng.normal(size=3))
    tubes: List[Tube] = []
    volume = 0.0
    queue = deque([(start, direction, params.root_radius, 0, -1)])
    while queue and volume < params.budget_mm3:
        start, direction, radius, depth, parent = queue.popleft()
        index = len(tubes)
        length = params.step * rng.uniform(*params.length)
        family = (-1, index, parent) + tuple(i for i, t in enumerate(tubes)
                                              if parent >= 0 and t.parent == parent)
        tube, complete = _walk(start, direction, radius, length, params, grid, (-1, index),
                               family, rng)
        tube = Tube(tube.points, tube.radii, depth, parent)
        tubes.append(tube)
        grid.add(tube, index)
        volume += float(np.sum(np.pi * tube.radii[1:] ** 2 * params.step))
        r_end = float(tube.radii[-1])
        fraction = rng.uniform(0.3, 0.7)
        big, small = max(fraction, 1 - fraction), min(fraction, 1 - fraction)
        if not complete or depth + 1 >= params.max_depth:
            continue
        heading = _unit(tube.points[-1] - tube.points[-2])
        normal = _perpendicular(heading, rng)
        for flow, (low, high), sign in ((big, params.angles_deg[0], 1.0),
                                        (small, params.angles_deg[1], -1.0)):
            child = _rotate(heading, normal, sign * np.deg2rad(rng.uniform(low, high)))
            child_radius = max(r_end * flow ** (1.0 / 3.0), params.min_radius)
            queue.append((tube.points[-1], child, child_radius, depth + 1, index))
    return tubes + _loops(tubes, params, grid, rng), grid.occupancy


def _loops(tubes: List[Tube], params: TreeParams, grid: _Grid,
           rng: np.random.Generator) -> List[Tube]:
    """Up to ``params.num_loops`` bent tubes joining unrelated branches 4-30 steps apart,
    crossing no third branch's clearance zone."""
    loops: List[Tube] = []
    for _ in range(params.num_loops if len(tubes) > 2 else 0):
        for _attempt in range(50):
            a, b = (int(i) for i in rng.choice(len(tubes), size=2, replace=False))
            if b == tubes[a].parent or tubes[b].parent in (a, tubes[a].parent):
                continue
            i = int(rng.integers(len(tubes[a].points)))
            j = int(rng.integers(len(tubes[b].points)))
            pa, pb = tubes[a].points[i], tubes[b].points[j]
            gap = float(np.linalg.norm(pb - pa))
            if not 4 * params.step <= gap <= 30 * params.step:
                continue
            radius = max(0.8 * min(tubes[a].radii[i], tubes[b].radii[j]), params.min_radius)
            bend = _perpendicular(_unit(pb - pa), rng) * gap * rng.uniform(0.2, 0.5)
            control = np.clip((pa + pb) / 2 + bend, radius + params.step,
                              grid.extent - radius - params.step)
            n = max(3, int(np.ceil(1.5 * gap / params.step)))
            t = np.linspace(0.0, 1.0, n)[:, None]
            points = (1 - t) ** 2 * pa + 2 * (1 - t) * t * control + t ** 2 * pb
            if any(grid.owner_at(point) not in (-1, a, b) for point in points):
                continue
            loop = Tube(points, np.full(n, radius), depth=-1)
            grid.add(loop, len(tubes) + len(loops))
            loops.append(loop)
            break
    return loops


def capsule_windows(tube: Tube, shape: Sequence[int], spacing: np.ndarray, reach: float
                    ) -> Iterator[Tuple[Tuple[slice, ...], np.ndarray, np.ndarray,
                                        Tuple[float, float]]]:
    """Per segment of ``tube`` (joining every ``SEGMENT_STEPS``-th point): the grid window within ``reach`` mm of it, the projection ``t``
    in [0, 1] of each voxel centre of the window on the segment, its distance (mm) to the
    segment's point ``t``, and the segment's end radii (mm)."""
    ends = list(range(0, len(tube.points) - 1, SEGMENT_STEPS)) + [len(tube.points) - 1]
    for k, k1 in zip(ends[:-1], ends[1:]):
        p0, p1 = tube.points[k], tube.points[k1]
        low = np.maximum(np.floor((np.minimum(p0, p1) - reach) / spacing), 0).astype(int)
        high = np.minimum(np.ceil((np.maximum(p0, p1) + reach) / spacing) + 1,
                          shape).astype(int)
        if np.any(high <= low):
            continue
        rel = np.meshgrid(*(np.arange(lo, hi) * s - c for lo, hi, s, c in
                            zip(low, high, spacing, p0)), indexing="ij", sparse=True)
        axis = p1 - p0
        t = np.clip((rel[0] * axis[0] + rel[1] * axis[1] + rel[2] * axis[2])
                    / max(float(axis @ axis), 1e-12), 0, 1)
        distance = np.sqrt(sum((r - t * a) ** 2 for r, a in zip(rel, axis)))
        window = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        yield window, t, distance, (float(tube.radii[k]), float(tube.radii[k1]))


def rasterize_tubes(tubes: Sequence[Tube], shape: Sequence[int], spacing: Sequence[float],
                    ) -> np.ndarray:
    """Soft occupancy of the union of the tubes' tapered capsules on the voxel grid.

    Args:
        tubes: centre lines in mm (this module's frame).
        shape: the grid's 3 sizes (voxels).
        spacing: mm per voxel along the 3 axes.
    Returns:
        float32 [*shape] in [0, 1]: ``clip((r(t) - distance) / w + 0.5, 0, 1)`` maximised over
        segments, ``w`` the smallest spacing; ``>= 0.5`` exactly where a voxel centre is inside.
    """
    grid = _Grid(shape, spacing)
    for index, tube in enumerate(tubes):
        grid.add(tube, index)
    return grid.occupancy
