"""Tubes on a voxel grid: exact tapered-capsule masks, partial-volume occupancy, cycle checks.

Frame: millimetres on the voxel grid, ``x = index * spacing`` per array axis (voxel centres,
nibabel's convention before the affine's rotation and translation). A tube is the union of
its segments' tapered capsules: a voxel is inside when its centre lies within ``r(t)`` of a
segment (``t`` the projection on it, ``r`` linear between the end radii). The soft occupancy
``clip((r(t) - distance) / w + 0.5, 0, 1)`` (``w`` the finest spacing) ramps over one voxel
around that surface and renders the image; the label is the exact test ``distance <= r(t)``.
:meth:`TubeGrid.euler_change` tells, before a tube is added, how many cycles it would close.
"""
from dataclasses import dataclass
from typing import Iterator, Sequence, Tuple

import numpy as np

__all__ = ["CLEARANCE", "Tube", "TubeGrid", "capsule_windows",
           "rasterize_tubes"]

CLEARANCE = 2.0  # fine voxels kept free around a tube (its 26-neighbours must not touch)
SEGMENT_STEPS = 2  # centre-line points per rasterised segment (the lines are smooth)
_DIAGONALS = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]) / np.sqrt(3)
_PROBES = np.concatenate([np.zeros((1, 3)), np.eye(3), -np.eye(3), _DIAGONALS])


@dataclass(frozen=True)
class Tube:
    """One centre line: points [N, 3] mm and radii [N] mm; ``depth`` 0 for the root, -1 a loop."""

    points: np.ndarray
    radii: np.ndarray
    depth: int
    parent: int = -1  # index of the parent tube in the tree's list, -1 for the root and loops

    def prefix(self, n: int) -> "Tube":
        """The first ``n`` points of the tube."""
        return Tube(self.points[:n], self.radii[:n], self.depth, self.parent)


def capsule_windows(tube: Tube, shape: Sequence[int], spacing: np.ndarray, reach: float
                    ) -> Iterator[Tuple[Tuple[slice, ...], np.ndarray, np.ndarray]]:
    """Per segment of ``tube`` (joining every ``SEGMENT_STEPS``-th point): the grid window
    within ``reach`` mm of it, the distance (mm) of each voxel centre of the window to the
    segment, and the tube's radius (mm) at the voxel's projection on the segment."""
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
        radius = tube.radii[k] + t * (tube.radii[k1] - tube.radii[k])
        yield tuple(slice(lo, hi) for lo, hi in zip(low, high)), distance, radius


class TubeGrid:
    """The voxel grid of a growing tree.

    Attributes:
        occupancy: float32 [*shape], soft occupancy of the tubes added (module docstring).
        label: bool [*shape], their exact mask.
        owner: int32 [*shape], the tube claiming each voxel (within its radius + ``CLEARANCE``
            fine voxels; the first tube added wins), -1 where none does.
    """

    def __init__(self, shape: Sequence[int], spacing: Sequence[float]):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = np.asarray(spacing, dtype=np.float64)
        self.width = float(self.spacing.min())
        self.extent = (np.asarray(self.shape) - 1) * self.spacing
        self.owner = np.full(self.shape, -1, np.int32)
        self.occupancy = np.zeros(self.shape, np.float32)
        self.label = np.zeros(self.shape, bool)

    def _index(self, points: np.ndarray) -> Tuple[np.ndarray, ...]:
        index = np.clip(np.round(points / self.spacing).astype(int), 0, np.asarray(self.shape) - 1)
        return tuple(index.T)

    def owners(self, points: np.ndarray) -> np.ndarray:
        """The owner of the voxel nearest to each of the points [N, 3] mm."""
        return self.owner[self._index(points)]

    def is_clear(self, point: np.ndarray, radius: float, allowed: Tuple[int, ...]) -> bool:
        """Whether a ball of ``radius`` mm at ``point`` (its centre and 14 surface points) lies
        in no claim but those of ``allowed``."""
        return bool(np.isin(self.owners(point + radius * _PROBES), allowed).all())

    def euler_change(self, tube: Tube) -> int:
        """How adding ``tube`` would change the Euler characteristic of the label (26-connected
        foreground, 6-connected background, as ``skimage.measure.euler_number(connectivity=3)``).

        The characteristic sums over 2x2x2 voxel configurations, so the change is computed on
        the box around the tube, two voxels wider than it. For a tube that touches the tree
        and encloses no cavity, ``-change`` is the number of cycles it closes: 0 for a branch,
        1 for a loop.
        """
        from skimage.measure import euler_number  # imported here: `import vertspine` stays light

        reach = float(tube.radii.max()) + self.width
        low = np.maximum(np.floor((tube.points.min(0) - reach) / self.spacing) - 2, 0)
        high = np.minimum(np.ceil((tube.points.max(0) + reach) / self.spacing) + 3, self.shape)
        low, high = low.astype(int), high.astype(int)
        box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
        before = self.label[box]
        after = before.copy()
        for window, distance, radius in capsule_windows(tube, self.shape, self.spacing, reach):
            after[tuple(slice(w.start - lo, w.stop - lo) for w, lo in zip(window, low))] |= (
                distance <= radius)
        return int(euler_number(after, connectivity=3) - euler_number(before, connectivity=3))

    def add(self, tube: Tube, index: int) -> None:
        """Rasterise ``tube`` into occupancy and label, and claim its zone for ``index``."""
        clearance = CLEARANCE * self.width
        for window, distance, radius in capsule_windows(
                tube, self.shape, self.spacing, reach=float(tube.radii.max()) + clearance):
            soft = np.clip((radius - distance) / self.width + 0.5, 0.0, 1.0).astype(np.float32)
            np.maximum(self.occupancy[window], soft, out=self.occupancy[window])
            self.label[window] |= distance <= radius
            zone = self.owner[window]
            zone[(distance <= radius + clearance) & (zone < 0)] = index


def rasterize_tubes(tubes: Sequence[Tube], shape: Sequence[int], spacing: Sequence[float],
                    ) -> Tuple[np.ndarray, np.ndarray]:
    """Occupancy and label of the union of ``tubes`` (centre lines in mm) on the grid.

    Args:
        tubes: the tubes.
        shape: the grid's 3 sizes (voxels).
        spacing: mm per voxel along the 3 axes.
    Returns:
        float32 [*shape] soft occupancy in [0, 1], and the bool [*shape] label.
    """
    grid = TubeGrid(shape, spacing)
    for index, tube in enumerate(tubes):
        grid.add(tube, index)
    return grid.occupancy, grid.label
