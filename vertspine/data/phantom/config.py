"""Names, splits and parameters of the phantom dataset (no drawing here).

The level, lesion and split names are :mod:`vertspine.data.spine_categories`'s.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Tuple

from ..spine_categories import LESION_CLASSES, SPLITS, VERTEBRA_LEVELS

__all__ = ["GENERATOR_VERSION", "PhantomConfig", "split_index"]

# Bump whenever a change alters any generated pixel or annotation: cached datasets regenerate.
GENERATOR_VERSION = "vertspine-phantom-1"


def split_index(split: str) -> int:
    """The integer that seeds ``split`` (its position in :data:`SPLITS`).

    Raises:
        ValueError: ``split`` is not one of :data:`SPLITS`.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown phantom split {split!r}; expected one of {SPLITS}.")
    return SPLITS.index(split)


@dataclass(frozen=True)
class PhantomConfig:
    """Everything that determines the phantom dataset (stored in its manifest).

    Attributes:
        image_height: image rows in pixels.
        image_width: image columns in pixels.
        num_train: images in the "train" split.
        num_val: images in the "val" split.
        num_test: images in the "test" split (held out: never used to choose a model or a
            threshold).
        normal_fraction: probability that an image has no lesion.
        seed: base seed; image ``i`` of a split uses ``default_rng([seed, split_index, i])``.
        min_vertebrae: fewest vertebrae in view (at least 4).
        max_vertebrae: most vertebrae in view.
        max_lesions: most lesions in an abnormal image (each of a different class).
        l6_probability: probability that a patient has a transitional L6 (seen when the run
            reaches it).
    """

    image_height: int = 256
    image_width: int = 256
    num_train: int = 200
    num_val: int = 50
    num_test: int = 50
    normal_fraction: float = 0.3
    seed: int = 0
    min_vertebrae: int = 4
    max_vertebrae: int = 12
    max_lesions: int = 4
    l6_probability: float = 0.05

    def __post_init__(self):
        if min(self.image_height, self.image_width) < 64:
            raise ValueError(f"Phantom images need at least 64x64 pixels, got {self.size}.")
        if min(self.num_train, self.num_val, self.num_test, self.seed) < 0:
            raise ValueError("num_train, num_val, num_test and seed must be non-negative.")
        if not 4 <= self.min_vertebrae <= self.max_vertebrae <= len(VERTEBRA_LEVELS) - 1:
            raise ValueError("Need 4 <= min_vertebrae <= max_vertebrae <= 24.")
        if not 1 <= self.max_lesions <= len(LESION_CLASSES):
            raise ValueError(f"max_lesions must be in 1..{len(LESION_CLASSES)}.")
        for name in ("normal_fraction", "l6_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1].")

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of every image."""
        return self.image_height, self.image_width

    def num_images(self, split: str) -> int:
        """How many images ``split`` has."""
        return (self.num_train, self.num_val, self.num_test)[split_index(split)]

    def to_dict(self) -> Dict[str, Any]:
        """The parameters as a JSON-ready dict."""
        return dataclasses.asdict(self)
