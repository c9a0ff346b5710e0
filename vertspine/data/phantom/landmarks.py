"""How far the phantom's landmarks determine vertebra levels: an upper bound for level models.

A run of consecutive levels in view is pinned down by its landmarks: the skull base above C1,
the distinct shapes of C1 and C2, the region of each vertebra (cervical: no ribs; thoracic:
ribs and lungs; lumbar: dense abdomen) and the sacrum below the last lumbar vertebra. Shifting
the run by d levels keeps the image consistent with all of them when every shifted level has
the same landmark pattern; with k consistent shifts, a model that reads only landmarks can at
best pick one at random, so it names the run's vertebrae right with probability 1/k. The
**landmark ceiling** of a dataset is the share of its vertebrae named right that way: body
sizes (4% jitter per level, per-image scale from a 190-300 mm field of view) can add a little
beyond it, no more than a little.

Levels are VerSe category ids (1 = C1 ... 24 = L5, 25 = L6,
:data:`vertspine.data.spine_categories.VERTEBRA_LEVELS`).
"""
from typing import Iterable, List, Sequence, Tuple

from ..spine_categories import VERTEBRA_LEVELS

__all__ = ["consistent_shifts", "landmark_ceiling"]

_C7, _T12, _L5, _L6 = (VERTEBRA_LEVELS.index(name) + 1 for name in ("C7", "T12", "L5", "L6"))


def _landmark(level: int) -> str:
    """The landmark class of a level id: C1 and C2 by shape, else the region."""
    if level <= 2:
        return f"C{level}"
    return "C" if level <= _C7 else "T" if level <= _T12 else "L"


def consistent_shifts(levels: Sequence[int]) -> List[int]:
    """Shifts d such that ``levels + d`` shows the same landmarks as ``levels``, to a reader
    who knows the landmarks but not the patient's number of lumbar vertebrae.

    Such a reader takes a run that ends on the sacrum to end at L5 (the common anatomy; a
    phantom patient has a transitional L6 with probability 0.05) unless the run shows six
    lumbar vertebrae. For an L6 patient whose run ends on the sacrum with fewer lumbar
    vertebrae in view, 0 is then not among the shifts: the landmarks mislead (L3-L6 above the
    sacrum reads as L2-L5).

    Args:
        levels: the level ids in view, consecutive (any order). The patient's last lumbar level
            is L6 when 25 is in view, else L5; the sacrum is seen when the run reaches it.
    Returns:
        the consistent shifts under the first anatomy (5, then 6 lumbar vertebrae) that has
        any, ascending.
    """
    run = sorted(set(int(level) for level in levels))
    if not run:
        raise ValueError("consistent_shifts needs at least one level.")
    if run != list(range(run[0], run[-1] + 1)):
        raise ValueError(f"levels {run} are not consecutive.")
    pattern = [_landmark(level) for level in run]
    sacrum = run[-1] == (_L6 if _L6 in run else _L5)
    for last in (_L5, _L6):  # the reader's assumed anatomy, the common one first
        shifts = []
        for shift in range(1 - run[0], last - run[-1] + 1):
            moved = [level + shift for level in run]
            if [_landmark(level) for level in moved] == pattern and (moved[-1] == last) == sacrum:
                shifts.append(shift)
        if shifts:
            return shifts
    return []


def landmark_ceiling(images: Iterable[Sequence[int]]) -> Tuple[float, List[int]]:
    """The landmark ceiling of IDR (percent) over images, and each image's shift count.

    An image with k consistent shifts, 0 among them, counts 1/k of its vertebrae right; one
    whose shifts miss 0 (the landmarks mislead, see :func:`consistent_shifts`) counts none.

    Args:
        images: per image, the level ids of its vertebrae (one entry per vertebra).
    """
    right, total, counts = 0.0, 0, []
    for levels in images:
        shifts = consistent_shifts(levels)
        counts.append(len(shifts))
        right += len(levels) / len(shifts) if 0 in shifts else 0.0
        total += len(levels)
    return (100.0 * right / total if total else float("nan")), counts
