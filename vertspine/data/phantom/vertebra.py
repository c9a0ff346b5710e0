"""The outline of one vertebra on a lateral view, as polygons in its pose's frame.

A vertebra is the union of its parts (what its mask and box cover): the vertebral body
(a rounded quadrilateral, wedged when the anterior height is smaller), the pedicle, the
articular pillar and the spinous process behind it. Shapes vary by region: cervical bodies
are small and square with an anterior-inferior lip and short spinous processes; thoracic
spinous processes are long and point steeply down; lumbar bodies are large and wide with
hatchet-shaped horizontal spinous processes. C1 (atlas) has no body: a ring-like anterior
arch, a lateral mass and a thin posterior arch; C2 carries the dens, a peg rising from its body.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from .shapes import Pose, band, chaikin, ellipse, quad

__all__ = ["ARCH", "BODY", "POSTERIOR", "Part", "foramen", "region", "vertebra_parts"]

BODY, POSTERIOR, ARCH = "body", "posterior", "arch"
_ATLAS, _AXIS = 0, 1  # level indices of C1 and C2
_FIRST_THORACIC, _FIRST_LUMBAR = 7, 19


@dataclass(frozen=True)
class Part:
    """One drawn piece of a vertebra: ``kind`` (BODY, POSTERIOR or ARCH) and its polygon."""

    kind: str
    polygon: np.ndarray


@dataclass(frozen=True)
class _Posterior:
    """Posterior-element proportions (lengths over body depth D or posterior height h)."""

    pedicle: float  # pedicle length / D
    pillar: float  # articular pillar width / D
    rise: float  # superior articular process above the body top / h
    drop: float  # inferior articular process below the body bottom / h
    spine_length: float  # spinous process length / D
    spine_angle: float  # spinous process direction, degrees below posterior-horizontal
    spine_base: float  # spinous process height at the lamina / h
    spine_tip: float  # spinous process height at its tip / h


_REGION_POSTERIOR: Dict[str, _Posterior] = {
    "cervical": _Posterior(0.28, 0.35, 0.25, 0.25, 0.70, 20.0, 0.45, 0.25),
    "thoracic": _Posterior(0.30, 0.25, 0.20, 0.20, 0.95, 50.0, 0.45, 0.20),
    "lumbar": _Posterior(0.33, 0.28, 0.30, 0.25, 0.62, 8.0, 0.55, 0.50),
}
_LEVEL_POSTERIOR: Dict[int, Dict[str, float]] = {
    1: dict(spine_length=0.95, spine_angle=25.0, spine_base=0.7, spine_tip=0.4),  # C2
    6: dict(spine_length=1.2),  # C7, vertebra prominens
    7: dict(spine_length=1.05, spine_angle=35.0),  # T1
    23: dict(spine_length=0.5),  # L5
}


def region(level: int) -> str:
    """The region of a level index: "cervical", "thoracic" or "lumbar"."""
    if level < _FIRST_THORACIC:
        return "cervical"
    return "thoracic" if level < _FIRST_LUMBAR else "lumbar"


def vertebra_parts(pose: Pose) -> List[Part]:
    """The parts of the vertebra at ``pose``, polygons in the pose's frame."""
    if pose.level == _ATLAS:
        return [Part(kind, pose.to_frame(uv)) for kind, uv in _atlas_local(pose)]
    parts = [Part(BODY, pose.to_frame(_body_local(pose)))]
    if pose.level == _AXIS:
        parts.append(Part(BODY, pose.to_frame(_dens_local(pose))))
    parts += [Part(POSTERIOR, pose.to_frame(uv)) for uv in _posterior_local(pose)]
    return parts


def foramen(pose: Pose) -> Tuple[np.ndarray, np.ndarray]:
    """The intervertebral foramen below ``pose`` (behind its lower disc) as a local ellipse.

    Returns:
        (center, radii): the ellipse centre (u, v) and radii in the pose's local frame.
    """
    shape = _posterior_shape(pose.level)
    d, h, gap = pose.depth, pose.height, pose.gap
    center = np.array([d * (0.5 + 0.45 * shape.pedicle), 0.4 * h + 0.5 * gap])
    return center, np.array([0.16 * d, 0.3 * h + 0.25 * gap])


def _body_local(pose: Pose) -> np.ndarray:
    """The body outline: a quadrilateral with concave endplates and rounded corners."""
    d, hp, ha = pose.depth, pose.height, pose.anterior_height
    kind = region(pose.level)
    concavity = {"cervical": 0.0, "thoracic": 0.02, "lumbar": 0.035}[kind] * hp
    lip = 0.1 * ha if kind == "cervical" else 0.0  # cervical anterior-inferior lip
    corners = [
        (-d / 2, -ha / 2),
        (0.0, -(ha + hp) / 4 + concavity),
        (d / 2, -hp / 2),
        (d / 2, hp / 2),
        (0.0, (ha + hp) / 4 - concavity),
        (-d / 2 - 0.4 * lip, ha / 2 + lip),
    ]
    return chaikin(np.array(corners), ratio=0.12)


def _dens_local(pose: Pose) -> np.ndarray:
    """The dens of C2: a rounded peg rising from the top of the body."""
    d, h = pose.depth, pose.height
    return chaikin(quad(-0.27 * d, 0.13 * d, -0.5 * h - 0.7 * h, -0.4 * h), ratio=0.25)


def _posterior_shape(level: int) -> _Posterior:
    """The posterior proportions of ``level`` (region defaults with level overrides)."""
    values = dict(vars(_REGION_POSTERIOR[region(level)]))
    values.update(_LEVEL_POSTERIOR.get(level, {}))
    return _Posterior(**values)


def _posterior_local(pose: Pose) -> List[np.ndarray]:
    """Pedicle, articular pillar and spinous process polygons in the local frame."""
    s, d, h = _posterior_shape(pose.level), pose.depth, pose.height
    pedicle_end = d / 2 + s.pedicle * d
    pillar_end = pedicle_end + s.pillar * d
    pedicle = quad(d / 2 - 0.1 * d, pedicle_end, -0.45 * h, -0.05 * h)
    top, bottom, lean = -h / 2 - s.rise * h, h / 2 + s.drop * h, 0.08 * d
    pillar = np.array(
        [[pedicle_end - 0.05 * d + lean, top], [pillar_end + lean, top],
         [pillar_end, bottom], [pedicle_end - 0.05 * d, bottom]]
    )
    return [chaikin(pedicle), chaikin(pillar), chaikin(_spinous_local(s, pillar_end, d, h))]


def _spinous_local(s: _Posterior, start: float, d: float, h: float) -> np.ndarray:
    """The spinous process: a tapered bar from the lamina along its direction."""
    theta = np.deg2rad(s.spine_angle)
    direction = np.array([np.cos(theta), np.sin(theta)])
    across = np.array([-np.sin(theta), np.cos(theta)])
    base = np.array([start - 0.05 * d, -0.05 * h])
    tip = base + s.spine_length * d * direction
    half_base, half_tip = np.array([0.0, s.spine_base * h / 2]), across * (s.spine_tip * h / 2)
    return np.array([base - half_base, tip - half_tip, tip + half_tip, base + half_base])


def _atlas_local(pose: Pose) -> List[tuple]:
    """C1: a ring-like anterior arch, the lateral mass and the thin posterior arch."""
    d, h = pose.depth, pose.height
    arch_line = np.array([[0.4 * d, 0.0], [0.9 * d, 0.1 * h], [1.3 * d, 0.15 * h]])
    return [
        (ARCH, ellipse((-0.52 * d, 0.0), (0.17 * d, 0.45 * h))),
        (POSTERIOR, chaikin(quad(-0.22 * d, 0.45 * d, -0.5 * h, 0.5 * h))),
        (POSTERIOR, band(arch_line, 0.4 * h)),
        (POSTERIOR, ellipse((1.35 * d, 0.12 * h), (0.14 * d, 0.4 * h))),
    ]
