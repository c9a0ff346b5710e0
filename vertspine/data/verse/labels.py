"""VerSe label numbering and the COCO categories the converter writes.

VerSe masks number vertebrae 1-7 (C1-C7), 8-19 (T1-T12), 20-25 (L1-L6), 26 (sacrum),
27 (coccyx) and 28 (T13, a transitional thoracic vertebra). vertspine's vertebra datasets have
25 level classes, C1..L6, whose COCO category id *is* the VerSe label (1..25), as in the phantom
dataset and VertFound's ``vert_det.py``. Labels 26-28 have no category: the converter skips
their boxes and counts them (T13 by the ``t13`` policy, see :mod:`.convert`).
"""
from typing import Dict, List

from ..spine_categories import VERTEBRA_LEVELS

__all__ = [
    "LEVEL_LABELS",
    "T13_LABEL",
    "VERSE_LABEL_NAMES",
    "verse_categories",
    "verse_label_name",
]

# VerSe labels that are COCO categories (category id == VerSe label).
LEVEL_LABELS = tuple(range(1, len(VERTEBRA_LEVELS) + 1))
T13_LABEL = 28
VERSE_LABEL_NAMES: Dict[int, str] = {
    **{label: name for label, name in zip(LEVEL_LABELS, VERTEBRA_LEVELS)},
    26: "Sacrum",
    27: "Coccyx",
    T13_LABEL: "T13",
}


def verse_label_name(label: int) -> str:
    """The VerSe name of a mask label ("L1", "T13", "Sacrum"), or "label <n>" if unknown."""
    return VERSE_LABEL_NAMES.get(int(label), f"label {int(label)}")


def verse_categories() -> List[Dict[str, object]]:
    """The 25 COCO categories: ids 1..25 named C1..L6, supercategory "vertebra"."""
    return [
        {"id": label, "name": name, "supercategory": "vertebra"}
        for label, name in zip(LEVEL_LABELS, VERTEBRA_LEVELS)
    ]
