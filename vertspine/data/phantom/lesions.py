"""The seven VinDr-SpineXR lesion classes: planning, drawing and boxes.

Planning (:func:`plan_lesions`) happens before the spine is laid out, because three lesions
change the geometry (:class:`~.spine.Deformation`): spondylolisthesis shifts a vertebra and
everything above it anteriorly over the one below, disc space narrowing thins one disc, and
vertebral collapse wedges or flattens a body. Drawing (:func:`draw_lesion`) then adds each
lesion's signature to the density canvas (image pixels, y down) and returns its box:

1. Osteophytes: bright beaks growing from the anterior corners next to a disc.
2. Surgical implant: pedicle screws in 2-3 vertebrae joined by a rod (metal, saturated).
3. Spondylolysthesis: the slipped pair's bodies (the slip itself is the signature).
4. Foraminal stenosis: a bright bony overgrowth inside the dark foramen behind a disc.
5. Disc space narrowing: a disc much thinner than its neighbours, sclerotic endplates.
6. Vertebral collapse: a wedged or flattened body with a dense compression band.
7. Other lesions: a round lytic (dark) or sclerotic (bright) spot inside a body.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..spine_categories import LESION_CLASSES
from .config import PhantomConfig
from .shapes import Pose, band, chaikin, ellipse, mask_bbox, quad, rasterize
from .spine import Deformation
from .vertebra import BODY, foramen, vertebra_parts

__all__ = ["LesionPlan", "draw_lesion", "plan_lesions"]

OSTEOPHYTES, IMPLANT, LISTHESIS, STENOSIS, NARROWING, COLLAPSE, OTHER = range(1, 8)
_DISC_CLASSES = (OSTEOPHYTES, LISTHESIS, STENOSIS, NARROWING)
_MIN_LEVEL = {OTHER: 1, COLLAPSE: 2, IMPLANT: 2}  # lowest level index; disc classes: 1 (C2/C3)
_LESION_COUNT_WEIGHTS = np.array([0.35, 0.3, 0.2, 0.15])  # of 1, 2, 3, 4 lesions


@dataclass(frozen=True)
class LesionPlan:
    """One lesion to draw.

    Attributes:
        category_id: COCO id (index into LESION_CLASSES + 1).
        first: run position (0 = top vertebra in view) of the first vertebra concerned.
        count: vertebrae concerned: 1 for a body, 2 for a disc (the pair around it), 2-3 for
            an implant.
        params: class-specific random values, drawn at planning time.
    """

    category_id: int
    first: int
    count: int
    params: Tuple[float, ...]


def plan_lesions(
    rng: np.random.Generator, cfg: PhantomConfig, levels: Sequence[int]
) -> Tuple[List[LesionPlan], Deformation]:
    """Decide an image's lesions for the run of ``levels`` (top to bottom).

    With probability ``cfg.normal_fraction`` the image is normal. Otherwise it gets 1..4
    lesions (weights 35/30/20/15 %, capped at ``max_lesions``) of distinct, uniformly drawn
    classes, each on a free site (one lesion per disc, one body lesion per vertebra, an
    implant only where no other lesion is); a class without a free site is skipped.

    Returns:
        (plans, deformation): plans in drawing order and the run's geometric deformation.
    """
    deformation = Deformation.none(len(levels))
    if rng.random() < cfg.normal_fraction:
        return [], deformation
    weights = _LESION_COUNT_WEIGHTS[: cfg.max_lesions]
    count = 1 + int(rng.choice(len(weights), p=weights / weights.sum()))
    used_vertebrae: Set[int] = set()
    used_discs: Set[int] = set()
    plans = []
    for category in rng.permutation(len(LESION_CLASSES))[:count] + 1:
        site = _choose_site(rng, int(category), levels, used_vertebrae, used_discs)
        if site is None:
            continue
        plan = LesionPlan(int(category), site[0], site[1], _sample_params(rng, int(category)))
        _reserve(plan, used_vertebrae, used_discs)
        _deform(deformation, plan)
        plans.append(plan)
    return plans, deformation


def draw_lesion(
    canvas: np.ndarray,
    metal: np.ndarray,
    poses: Sequence[Pose],
    plan: LesionPlan,
    cfg: PhantomConfig,
) -> Dict:
    """Draw one planned lesion and return its annotation.

    Args:
        canvas: float density [H, W], modified in place.
        metal: float metal coverage [H, W], modified in place (implants).
        poses: the vertebrae in view, image pixels, top to bottom.
        plan: the lesion.
        cfg: the dataset parameters (image size sets the box padding and minimum size).
    Returns:
        dict with ``category_id``, ``bbox`` (XYXY, image pixels), ``segmentation`` (the box as
        a COCO polygon) and ``area`` (box area, px^2).
    """
    involved = poses[plan.first : plan.first + plan.count]
    region = _DRAW[plan.category_id](canvas, metal, involved, plan.params)
    x0, y0, x1, y1 = _finish_box(mask_bbox(region), cfg)
    return {
        "category_id": plan.category_id,
        "bbox": [x0, y0, x1, y1],
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        "area": (x1 - x0) * (y1 - y0),
    }


def _choose_site(
    rng: np.random.Generator,
    category: int,
    levels: Sequence[int],
    used_vertebrae: Set[int],
    used_discs: Set[int],
) -> Optional[Tuple[int, int]]:
    """A random free (first, count) site for ``category``, or None when there is none."""
    n = len(levels)
    if category in _DISC_CLASSES:
        candidates = [(i, 2) for i in range(n - 1) if levels[i] >= 1 and i not in used_discs]
    elif category == IMPLANT:
        candidates = [
            (i, m) for m in (2, 3) for i in range(n - m + 1)
            if levels[i] >= _MIN_LEVEL[IMPLANT]
            and not used_vertebrae.intersection(range(i, i + m))
            and not used_discs.intersection(range(i, i + m - 1))
        ]
    else:
        lowest = _MIN_LEVEL[category]
        candidates = [(i, 1) for i in range(n) if levels[i] >= lowest and i not in used_vertebrae]
    return candidates[int(rng.integers(len(candidates)))] if candidates else None


def _sample_params(rng: np.random.Generator, category: int) -> Tuple[float, ...]:
    """The random values a lesion of ``category`` is drawn with.

    Osteophytes: (beaks: 0 upper, 1 lower, 2 both; beak length / body depth). Implant: (screw
    tilt, degrees). Spondylolisthesis: (slip / body depth). Foraminal stenosis: (overgrowth
    size / foramen size). Disc space narrowing: (disc height factor). Vertebral collapse:
    (anterior, posterior height factors). Other lesions: (1 lytic / 0 sclerotic; centre u, v
    offsets / body depth, height; radius / body size; 8 outline radius jitters in [-1, 1]).
    """
    if category == OSTEOPHYTES:
        return float(rng.integers(3)), rng.uniform(0.14, 0.24)
    if category == IMPLANT:
        return (rng.uniform(-8.0, 8.0),)
    if category == LISTHESIS:
        return (rng.uniform(0.2, 0.35),)
    if category == STENOSIS:
        return (rng.uniform(0.6, 0.85),)
    if category == NARROWING:
        return (rng.uniform(0.12, 0.3),)
    if category == COLLAPSE:
        wedge = rng.random() < 0.6
        anterior = rng.uniform(0.4, 0.65) if wedge else rng.uniform(0.5, 0.7)
        return anterior, rng.uniform(0.9, 1.0) if wedge else anterior * rng.uniform(1.0, 1.15)
    return (float(rng.random() < 0.65), *rng.uniform(-0.2, 0.2, 2), rng.uniform(0.17, 0.27),
            *rng.uniform(-1.0, 1.0, 8))


def _reserve(plan: LesionPlan, used_vertebrae: Set[int], used_discs: Set[int]) -> None:
    """Mark the vertebrae and discs ``plan`` occupies."""
    if plan.category_id in _DISC_CLASSES:
        used_discs.add(plan.first)
        return
    used_vertebrae.update(range(plan.first, plan.first + plan.count))
    if plan.category_id == IMPLANT:
        used_discs.update(range(plan.first, plan.first + plan.count - 1))


def _deform(deformation: Deformation, plan: LesionPlan) -> None:
    """Apply ``plan``'s geometric change (if any) to ``deformation`` in place."""
    if plan.category_id == LISTHESIS:
        deformation.slip[plan.first] = plan.params[0]
    elif plan.category_id == NARROWING:
        deformation.gap[plan.first] *= plan.params[0]
    elif plan.category_id == COLLAPSE:
        deformation.anterior[plan.first], deformation.posterior[plan.first] = plan.params


def _body_mask(pose: Pose, shape: Tuple[int, int]) -> np.ndarray:
    """The bool mask of a vertebra's body (with the dens for C2)."""
    return rasterize([part.polygon for part in vertebra_parts(pose) if part.kind == BODY], *shape)


def _draw_osteophytes(canvas, metal, poses, params) -> np.ndarray:
    """Beaks at the anterior corners next to the disc between ``poses``: upper, lower or both."""
    which, length = int(params[0]), params[1]
    upper, lower = poses
    sides = ((upper, 1.0, which != 1), (lower, -1.0, which != 0))
    spurs = [pose.to_frame(_spur(pose, length, upper.gap, side)) for pose, side, on in sides if on]
    mask = rasterize(spurs, *canvas.shape)
    canvas[mask] += 0.45
    return mask


def _spur(pose: Pose, length: float, gap: float, side: float) -> np.ndarray:
    """A beak from the anterior-inferior (side=1) or -superior (side=-1) corner, local frame."""
    d, h, reach = pose.depth, pose.anterior_height / 2, length * pose.depth
    outline = np.array([
        [-d / 2 + 0.04 * d, 0.4 * h], [-d / 2 - 0.45 * reach, 0.75 * h],
        [-d / 2 - 0.8 * reach, h + 0.35 * gap + 0.1 * reach], [-d / 2 - 0.1 * reach, h + 0.1 * gap],
        [-d / 2 + 0.1 * d, h],
    ])
    return chaikin(outline * [1.0, side], ratio=0.2, iterations=1)


def _draw_implant(canvas, metal, poses, params) -> np.ndarray:
    """Pedicle screws through each vertebra of ``poses`` and a rod joining their heads."""
    tilt = np.tan(np.deg2rad(params[0]))
    pieces, heads = [], []
    for pose in poses:
        d, v = pose.depth, -0.22 * pose.height
        entry, tip = np.array([1.05 * d, v]), np.array([-0.32 * d, v + tilt * 1.37 * d])
        pieces.append(pose.to_frame(band(np.stack([entry, tip]), max(0.13 * d, 2.2))))
        pieces.append(pose.to_frame(ellipse(entry, (0.12 * d, 0.16 * d), 16)))
        heads.append(pose.to_frame(entry[None])[0])
    ends = np.array([heads[0], heads[-1]])
    overhang = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0]) * 0.15 * poses[0].depth
    rod = np.concatenate([[heads[0] - overhang], heads, [heads[-1] + overhang]])
    pieces.append(band(rod, max(0.09 * poses[0].depth, 2.0)))
    mask = rasterize(pieces, *canvas.shape)
    metal[mask] = 1.0
    return mask


def _draw_listhesis(canvas, metal, poses, params) -> np.ndarray:
    """Nothing extra (the layout slipped the upper vertebra); the region is both bodies."""
    return np.logical_or(*(_body_mask(pose, canvas.shape) for pose in poses))


def _draw_stenosis(canvas, metal, poses, params) -> np.ndarray:
    """A bright bony overgrowth filling part of the foramen below the upper vertebra."""
    upper = poses[0]
    center, radii = foramen(upper)
    overgrowth = ellipse(center + radii * [0.45, 0.1], radii * [1.1, 1.0] * params[0])
    grown = rasterize([upper.to_frame(overgrowth)], *canvas.shape)
    canvas[grown] += 0.4
    return grown | rasterize([upper.to_frame(ellipse(center, radii))], *canvas.shape)


def _draw_narrowing(canvas, metal, poses, params) -> np.ndarray:
    """Sclerotic endplates around the thinned disc; the region spans both endplates."""
    upper, lower = poses
    du, hu, dl, hl = upper.depth, upper.height, lower.depth, lower.height
    endplates = [upper.to_frame(quad(-0.42 * du, 0.42 * du, 0.36 * hu, 0.5 * hu)),
                 lower.to_frame(quad(-0.42 * dl, 0.42 * dl, -0.5 * hl, -0.36 * hl))]
    canvas[rasterize(endplates, *canvas.shape)] += 0.1
    region = [upper.to_frame(quad(-0.5 * du, 0.5 * du, 0.25 * hu, 0.5 * hu + upper.gap)),
              lower.to_frame(quad(-0.5 * dl, 0.5 * dl, -0.5 * hl, -0.25 * hl))]
    return rasterize(region, *canvas.shape)


def _draw_collapse(canvas, metal, poses, params) -> np.ndarray:
    """A dense compression band across the (already wedged) body; the region is the body."""
    pose = poses[0]
    body = _body_mask(pose, canvas.shape)
    half = 0.15 * (pose.height + pose.anterior_height) / 2
    band_local = quad(-pose.depth / 2, pose.depth / 2, -half, half)
    canvas[body & rasterize([pose.to_frame(band_local)], *canvas.shape)] += 0.12
    return body


def _draw_other(canvas, metal, poses, params) -> np.ndarray:
    """A lytic (dark) or sclerotic (bright) irregular round spot inside the body."""
    lytic, fu, fv, radius, *jitter = params
    pose = poses[0]
    size = radius * min(pose.depth, (pose.height + pose.anterior_height) / 2)
    angles = np.linspace(0.0, 2 * np.pi, len(jitter), endpoint=False)
    radii = size * (1.0 + 0.15 * np.array(jitter))
    center = np.array([fu * pose.depth, fv * pose.height])
    outline = center + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
    spot = rasterize([pose.to_frame(chaikin(outline, 0.25))], *canvas.shape)
    spot &= _body_mask(pose, canvas.shape)
    canvas[spot] += -0.25 if lytic else 0.3
    return spot


_DRAW: Dict[int, Callable[..., np.ndarray]] = {
    OSTEOPHYTES: _draw_osteophytes,
    IMPLANT: _draw_implant,
    LISTHESIS: _draw_listhesis,
    STENOSIS: _draw_stenosis,
    NARROWING: _draw_narrowing,
    COLLAPSE: _draw_collapse,
    OTHER: _draw_other,
}


def _finish_box(box: Sequence[float], cfg: PhantomConfig) -> List[float]:
    """Pad a box by ~1 px per 256, grow it to the minimum size (8 px per 256), clip it."""
    unit = min(cfg.size) / 256.0
    x0, y0, x1, y1 = np.asarray(box, dtype=float) + np.array([-1, -1, 1, 1]) * unit
    grow = np.maximum(8.0 * unit - np.array([x1 - x0, y1 - y0]), 0.0) / 2
    x0, x1 = max(0.0, x0 - grow[0]), min(float(cfg.image_width), x1 + grow[0])
    y0, y1 = max(0.0, y0 - grow[1]), min(float(cfg.image_height), y1 + grow[1])
    return [round(float(v), 2) for v in (x0, y0, x1, y1)]
