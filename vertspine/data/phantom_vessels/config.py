"""Splits and parameters of the vessel phantom (everything stored in a split's manifest)."""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Tuple

__all__ = ["GENERATOR_VERSION", "SPLITS", "SPLIT_DOMAINS", "VesselPhantomConfig", "split_index"]

# Bump whenever a change alters any generated voxel or header: cached splits regenerate.
GENERATOR_VERSION = "vertspine-phantom-vessels-1"

# shift_train: the pool few-shot fine-tuning draws from, disjoint from shift_test (appended last
# so that the other splits keep their seeds).
SPLITS = ("train", "val", "test", "shift_test", "shift_train")
SPLIT_DOMAINS = {"train": "train", "val": "train", "test": "train", "shift_test": "shift",
                 "shift_train": "shift"}


@dataclass(frozen=True)
class VesselPhantomConfig:
    """Everything but the appearance domains that determines the vessel phantom.

    Volume ``i`` of a split is drawn from ``np.random.SeedSequence([seed, split_index, i])``
    alone (geometry and appearance from two children of it), so output does not depend on
    order, process or the other splits.

    Attributes:
        num_train, num_val, num_test, num_shift_test, num_shift_train: volumes per split
            (test: held out; shift_test: the held-out appearance domain, for zero-shot and
            few-shot evaluation; shift_train: the same domain's volumes to fine-tune on).
        seed: base seed.
        base_size: voxels per axis of most volumes.
        max_size: largest axis of the "large" volumes (axes drawn in multiples of 16 in
            ``base_size..max_size``).
        large_fraction: share of large volumes.
        fine_spacing: (low, high) mm of the finest axis.
        max_anisotropy: largest coarse/fine spacing ratio (one axis is coarse).
        anisotropic_fraction: share of volumes with a coarse axis.
        oblique_fraction: share of volumes whose affine is rotated (5-25 degrees).
        root_radius: (low, high) radius of the root vessel, in fine voxels.
        min_radius: smallest radius, in fine voxels (at least 0.6 coarse voxels, so thin
            vessels stay 26-connected on the anisotropic grid).
        vessel_fraction: (low, high) tube volume / box volume at which growth stops; growth
            also stops at 9 branch generations or where branches run out of room, so labels
            hold about 0.5-3.5% of the voxels (mean about 2%).
        max_loops: most loops (anastomoses) per tree.
        loop_probability: probability of each loop.
    """

    num_train: int = 24
    num_val: int = 8
    num_test: int = 32
    num_shift_test: int = 16
    num_shift_train: int = 8
    seed: int = 0
    base_size: int = 64
    max_size: int = 96
    large_fraction: float = 0.25
    fine_spacing: Tuple[float, float] = (0.4, 1.0)
    max_anisotropy: float = 2.0
    anisotropic_fraction: float = 0.5
    oblique_fraction: float = 0.3
    root_radius: Tuple[float, float] = (2.5, 4.0)
    min_radius: float = 1.2
    vessel_fraction: Tuple[float, float] = (0.02, 0.05)
    max_loops: int = 2
    loop_probability: float = 0.5

    def __post_init__(self):
        counts = tuple(self.num_volumes(split) for split in SPLITS)
        if min(counts) < 0 or self.seed < 0:
            raise ValueError(f"VesselPhantomConfig: volume counts {counts} and seed {self.seed} "
                             "must be non-negative.")
        if not 16 <= self.base_size <= self.max_size:
            raise ValueError(f"VesselPhantomConfig: need 16 <= base_size ({self.base_size}) <= "
                             f"max_size ({self.max_size}).")
        if not 1.0 <= self.max_anisotropy <= 4.0:
            raise ValueError(f"VesselPhantomConfig: max_anisotropy {self.max_anisotropy} must be "
                             "in [1, 4].")
        if self.min_radius < 0.6 * self.max_anisotropy:
            raise ValueError(
                f"VesselPhantomConfig: min_radius {self.min_radius} fine voxels is under 0.6 "
                f"coarse voxels at max_anisotropy {self.max_anisotropy}; thin vessels would break "
                "apart on the grid. Raise min_radius or lower max_anisotropy.")
        for name in ("fine_spacing", "root_radius", "vessel_fraction"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"VesselPhantomConfig: {name} {(low, high)} must be 0 < low "
                                 "<= high.")
        if self.root_radius[0] < self.min_radius:
            raise ValueError(f"VesselPhantomConfig: root_radius {self.root_radius} starts under "
                             f"min_radius {self.min_radius}.")
        for name in ("large_fraction", "anisotropic_fraction", "oblique_fraction",
                     "loop_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"VesselPhantomConfig: {name} must be a probability in [0, 1].")

    def num_volumes(self, split: str) -> int:
        """How many volumes ``split`` has."""
        split_index(split)  # checks the name
        return getattr(self, f"num_{split}")

    def to_dict(self) -> Dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)


def split_index(split: str) -> int:
    """The integer that seeds ``split`` (its position in :data:`SPLITS`).

    Raises:
        ValueError: ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown vessel phantom split {split!r}; expected one of {SPLITS}.")
    return SPLITS.index(split)
