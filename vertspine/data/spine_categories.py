"""The category and split names that every spine dataset of vertspine shares (one definition).

The phantom, VerSe and VinDr-SpineXR datasets number their categories from these tuples: a
category's COCO id is its index + 1, so the phantom's lesion ids are VinDr-SpineXR's and its
level ids are VerSe's mask labels.
"""
from typing import Tuple

__all__ = ["LESION_CLASSES", "SPLITS", "VERTEBRA_LEVELS"]

# VerSe numbering: index + 1 is the COCO category id and the VerSe mask label (C1 = 1 ... L5 = 24,
# L6 = 25, a transitional lumbar vertebra).
VERTEBRA_LEVELS: Tuple[str, ...] = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 7))
)
# VinDr-SpineXR's 7 lesion classes in the order of the upstream SPINE.FINDINGS (COCO ids 1..7),
# with the dataset's own spelling ("Spondylolysthesis"), which its CSVs use.
LESION_CLASSES: Tuple[str, ...] = (
    "Osteophytes",
    "Surgical implant",
    "Spondylolysthesis",
    "Foraminal stenosis",
    "Disc space narrowing",
    "Vertebral collapse",
    "Other lesions",
)
# The splits of every builtin dataset, in this order (the phantom seeds split i with index i).
SPLITS: Tuple[str, ...] = ("train", "val", "test")
