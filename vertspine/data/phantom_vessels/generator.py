"""One vessel phantom volume: grid and affine, tree, label and image, from its seed alone."""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np
from scipy.spatial.transform import Rotation

from .appearance import SHIFT_APPEARANCE, TRAIN_APPEARANCE, AppearanceDomain, draw_appearance, \
    render_volume
from .config import SPLIT_DOMAINS, VesselPhantomConfig, split_index
from .tree import TreeParams, grow_vessel_tree

__all__ = ["APPEARANCE_DOMAINS", "VesselVolume", "draw_grid", "generate_vessel_volume"]

APPEARANCE_DOMAINS = {"train": TRAIN_APPEARANCE, "shift": SHIFT_APPEARANCE}


@dataclass(frozen=True)
class VesselVolume:
    """A generated case.

    Attributes:
        image: [I, J, K] float32 (train domain) or int16 (shift domain).
        label: uint8 [I, J, K], 1 inside a vessel, 0 elsewhere.
        affine: float64 [4, 4], voxel index -> RAS+ mm; its column norms are ``spacing``.
        spacing: mm per voxel along I, J, K.
        info: drawn parameters: ``shape``, ``spacing``, ``oblique_deg``, ``num_branches``,
            ``num_loops``, ``root_radius_mm``, ``min_radius_mm``, ``appearance`` (a dict).
    """

    image: np.ndarray
    label: np.ndarray
    affine: np.ndarray
    spacing: Tuple[float, float, float]
    info: Dict[str, Any]


def draw_grid(cfg: VesselPhantomConfig, rng: np.random.Generator
              ) -> Tuple[Tuple[int, int, int], np.ndarray, np.ndarray, float]:
    """Shape, spacing (mm), affine and obliquity (degrees, 0 = axis-aligned) of one volume."""
    if rng.random() < cfg.large_fraction:
        sizes = np.arange(cfg.base_size, cfg.max_size + 1, 16)
        shape = tuple(int(s) for s in rng.choice(sizes, 3))
    else:
        shape = (cfg.base_size,) * 3
    spacing = np.full(3, rng.uniform(*cfg.fine_spacing))
    if rng.random() < cfg.anisotropic_fraction:
        spacing[rng.integers(3)] *= rng.uniform(1.2, cfg.max_anisotropy)
    rotation, angle = np.eye(3), 0.0
    if rng.random() < cfg.oblique_fraction:
        angle = float(rng.uniform(5.0, 25.0))
        axis = rng.normal(size=3)
        rotation = Rotation.from_rotvec(np.deg2rad(angle) * axis / np.linalg.norm(axis)).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation * spacing  # columns: spacing along each rotated index axis
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)  # centred at the origin
    return shape, spacing, affine, angle


def generate_vessel_volume(cfg: VesselPhantomConfig, split: str, index: int,
                           domain: Optional[AppearanceDomain] = None) -> VesselVolume:
    """Generate volume ``index`` of ``split`` (deterministic in ``cfg.seed``, split, index).

    Args:
        cfg: the phantom's parameters.
        split: one of :data:`~.config.SPLITS`; chooses the appearance domain.
        index: the volume's position in the split.
        domain: render with this appearance domain instead of the split's (the geometry stays
            the split's), e.g. to show one tree in both domains.
    """
    geometry_seed, appearance_seed = np.random.SeedSequence(
        [cfg.seed, split_index(split), index]).spawn(2)
    rng = np.random.default_rng(geometry_seed)
    shape, spacing, affine, angle = draw_grid(cfg, rng)
    fine = float(spacing.min())
    box_mm3 = float(np.prod(np.asarray(shape) * spacing))
    params = TreeParams(
        root_radius=rng.uniform(*cfg.root_radius) * fine, min_radius=cfg.min_radius * fine,
        step=fine, budget_mm3=rng.uniform(*cfg.vessel_fraction) * box_mm3,
        num_loops=int(np.sum(rng.random(cfg.max_loops) < cfg.loop_probability)))
    tubes, occupancy, label = grow_vessel_tree(params, shape, spacing, rng)
    domain = domain or APPEARANCE_DOMAINS[SPLIT_DOMAINS[split]]
    appearance_rng = np.random.default_rng(appearance_seed)
    appearance = draw_appearance(domain, appearance_rng)
    image = render_volume(occupancy, spacing, appearance, appearance_rng)
    info = {
        "shape": list(shape), "spacing": [float(s) for s in spacing], "oblique_deg": angle,
        "num_branches": sum(t.depth >= 0 for t in tubes),
        "num_loops": sum(t.depth < 0 for t in tubes),
        "root_radius_mm": params.root_radius, "min_radius_mm": params.min_radius,
        "appearance": appearance,
    }
    return VesselVolume(image, label.astype(np.uint8), affine,
                        tuple(float(s) for s in spacing), info)
