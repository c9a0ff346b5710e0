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
  bent tube (a quadratic Bezier curve), each adding one cycle (Betti-1) to the tree; a loop
  for which 50 random tries find no place is left out.

Every tube is checked before it is added (:meth:`.raster.TubeGrid.euler_change`): a branch
is cut before the point where it would close a cycle with the tree (touching another branch,
or a digital tunnel at a tight junction), a loop must close exactly one. So the label is one
26-connected component whose Betti-1 equals the number of loops.
"""
from collections import deque
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .raster import CLEARANCE, Tube, TubeGrid

__all__ = ["TreeParams", "grow_vessel_tree"]


@dataclass(frozen=True)
class TreeParams:
    """Drawn geometry of one tree (units: mm unless stated)."""

    root_radius: float  # radius where the root enters the box
    min_radius: float  # no branch is thinner
    step: float  # centre-line sampling, the fine voxel size
    budget_mm3: float  # tube volume at which growth stops
    num_loops: int  # loops to place
    tortuosity: float = 0.18  # rad: std of the per-step direction change
    taper: Tuple[float, float] = (0.8, 1.0)  # end radius / start radius of a branch
    length: Tuple[float, float] = (10.0, 24.0)  # branch length, steps
    angles_deg: Tuple[Tuple[float, float], Tuple[float, float]] = ((15, 40), (35, 75))
    max_depth: int = 9  # generations of branches at most


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
          grid: TubeGrid, own: Tuple[int, ...], family: Tuple[int, ...], rng: np.random.Generator
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


def grow_vessel_tree(params: TreeParams, shape: Sequence[int], spacing: Sequence[float],
                     rng: np.random.Generator) -> Tuple[List[Tube], np.ndarray, np.ndarray]:
    """Grow one tree with loops on the grid ``shape`` x ``spacing`` (box in the module docstring).

    Returns:
        the branches (root first, breadth-first order) followed by the loop tubes, their
        float32 soft occupancy [*shape] and their bool label [*shape]
        (:func:`.raster.rasterize_tubes`).
    """
    grid = TubeGrid(shape, spacing)
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
        walked = Tube(tube.points, tube.radii, depth, parent)
        tube = walked if index == 0 else _cut_before_cycle(walked, grid)
        if tube is None:
            continue
        complete = complete and len(tube.points) == len(walked.points)
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
    return tubes + _loops(tubes, params, grid, rng), grid.occupancy, grid.label


def _cut_before_cycle(tube: Tube, grid: TubeGrid) -> Optional[Tube]:
    """The longest start of ``tube`` that closes no cycle with the tree (Euler characteristic
    unchanged), found by bisection; None when even its first segment closes one."""
    if grid.euler_change(tube) == 0:
        return tube
    good, bad = 1, len(tube.points)  # prefix lengths: good closes none (or is one point)
    while bad - good > 1:
        middle = (good + bad) // 2
        if grid.euler_change(tube.prefix(middle)) == 0:
            good = middle
        else:
            bad = middle
    return tube.prefix(good) if good >= 2 else None


def _loops(tubes: List[Tube], params: TreeParams, grid: TubeGrid,
           rng: np.random.Generator) -> List[Tube]:
    """Up to ``params.num_loops`` bent tubes joining unrelated branches 4-30 steps apart,
    each closing exactly one cycle."""
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
            if not np.isin(grid.owners(points), (-1, a, b)).all():
                continue
            loop = Tube(points, np.full(n, radius), depth=-1)
            if grid.euler_change(loop) != -1:  # closes exactly one cycle
                continue
            grid.add(loop, len(tubes) + len(loops))
            loops.append(loop)
            break
    return loops
