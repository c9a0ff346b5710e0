"""Reading the VinDr-SpineXR annotation CSVs into per-image records, with row-level errors.

The release's ``annotations/{train,test}.csv`` have one row per box, with the columns
:data:`CSV_COLUMNS`; coordinates are pixels of the original DICOM (x right, y down, origin at
the top-left corner), read as continuous XYXY. A normal image has one row whose
``lesion_type`` is ``"No finding"`` and empty coordinates. Several radiologists (``rad_id``)
may box the same image: their boxes are all kept, as-is (no fusion, no deduplication), each
with its ``rad_id``.

Errors (:class:`VinDrDataError`) name the CSV file, the line numbers (the header is line 1)
and the fix: missing columns, an unknown ``lesion_type``, missing/non-numeric/non-finite or
inverted (max < min) coordinates on a lesion row, or one image_id listed under two studies.
"""
import csv
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..spine_categories import LESION_CLASSES

__all__ = [
    "CSV_COLUMNS",
    "NO_FINDING",
    "CsvBox",
    "CsvImage",
    "VinDrDataError",
    "read_vindr_csv",
]

NO_FINDING = "No finding"
CSV_COLUMNS: Tuple[str, ...] = (
    "study_id", "series_id", "image_id", "rad_id", "lesion_type", "xmin", "ymin", "xmax", "ymax",
)
_COORDINATES = ("xmin", "ymin", "xmax", "ymax")
_SHOWN = 5  # offending rows listed in a message


class VinDrDataError(ValueError):
    """The VinDr-SpineXR release is inconsistent; the message names the file, rows and fix."""


@dataclass(frozen=True)
class CsvBox:
    """One lesion row of a CSV.

    Attributes:
        line: line number in the CSV (header = 1).
        rad_id: the annotating radiologist.
        class_index: index into :data:`~vertspine.data.spine_categories.LESION_CLASSES` (COCO id = index + 1).
        xyxy: (xmin, ymin, xmax, ymax) in original DICOM pixels, unclipped.
    """

    line: int
    rad_id: str
    class_index: int
    xyxy: Tuple[float, float, float, float]


@dataclass
class CsvImage:
    """All rows of one image_id.

    Attributes:
        image_id: the DICOM file stem and the PNG name.
        study_id, series_id: from the CSV (the validation split keeps a study, and the studies
            of one PatientID, on one side).
        lines: CSV line numbers of its rows.
        boxes: its lesion rows.
        no_finding: whether any row says "No finding" (then ``abnormal`` is 0, as upstream).
    """

    image_id: str
    study_id: str
    series_id: str
    lines: List[int] = field(default_factory=list)
    boxes: List[CsvBox] = field(default_factory=list)
    no_finding: bool = False

    @property
    def abnormal(self) -> int:
        """Image-level label: 0 when any row is "No finding", else 1 (upstream's rule)."""
        return 0 if self.no_finding else 1


def read_vindr_csv(
    csv_file: str, drop_invalid_boxes: bool = False
) -> Tuple[Dict[str, CsvImage], int]:
    """Parse and check one VinDr-SpineXR annotation CSV.

    Args:
        csv_file: ``annotations/train.csv`` or ``annotations/test.csv`` of the release.
        drop_invalid_boxes: drop lesion rows with bad coordinates (and count them) instead of
            raising.
    Returns:
        (images by image_id in CSV order, number of lesion rows dropped for bad coordinates).
    Raises:
        FileNotFoundError: the CSV does not exist.
        VinDrDataError: see the module docstring.
    """
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(
            f"VinDr-SpineXR annotation CSV {csv_file} does not exist: pass the folder of the "
            "release (holding annotations/train.csv and annotations/test.csv) as --vindr-root."
        )
    with open(csv_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise VinDrDataError(
                f"{csv_file}: columns {missing} are missing (header: {header}); the VinDr-SpineXR "
                f"CSVs have the columns {list(CSV_COLUMNS)}. Is this the release's CSV?"
            )
        reader.fieldnames = header
        rows = [(index + 2, row) for index, row in enumerate(reader)]
    images: Dict[str, CsvImage] = {}
    unknown, bad_boxes, conflicts, no_id = [], [], [], []
    for line, row in rows:
        values = {k: (row.get(k) or "").strip() for k in CSV_COLUMNS}
        if not values["image_id"]:
            no_id.append(f"line {line}")
            continue
        image = images.setdefault(
            values["image_id"],
            CsvImage(values["image_id"], values["study_id"], values["series_id"]),
        )
        if image.study_id != values["study_id"]:
            conflicts.append(f"line {line}: image_id {values['image_id']} in study "
                             f"{values['study_id']}, earlier rows say {image.study_id}")
        image.lines.append(line)
        lesion = values["lesion_type"]
        if lesion == NO_FINDING:
            image.no_finding = True
            continue
        if lesion not in LESION_CLASSES:
            unknown.append(f"line {line}: {lesion!r}")
            continue
        xyxy, problem = _parse_box(values)
        if problem:
            bad_boxes.append(f"line {line}: {problem}")
            continue
        image.boxes.append(CsvBox(line, values["rad_id"], LESION_CLASSES.index(lesion), xyxy))
    _raise_if_any(csv_file, no_id, "rows have no image_id", "fill in or delete those rows")
    _raise_if_any(csv_file, conflicts, "image_ids appear under two study_ids",
                  "each image belongs to one study: correct the study_id of those rows")
    _raise_if_any(
        csv_file, unknown, "rows have an unknown lesion_type",
        f"use one of {list(LESION_CLASSES) + [NO_FINDING]} (the dataset spelling), or "
        "fix/delete those rows",
    )
    if not drop_invalid_boxes:
        _raise_if_any(
            csv_file, bad_boxes, "lesion rows have bad coordinates",
            "fix or delete those rows, or pass --drop-invalid-boxes to skip them (counted in "
            "the report)",
        )
    return images, len(bad_boxes)


def _parse_box(values: Dict[str, str]) -> Tuple[Optional[Tuple[float, ...]], Optional[str]]:
    """(xyxy, None) for a valid lesion row, (None, why) otherwise."""
    try:
        xyxy = tuple(float(values[k]) for k in _COORDINATES)
    except ValueError:
        return None, "coordinates " + ", ".join(f"{k}={values[k]!r}" for k in _COORDINATES) + \
            " are missing or not numbers"
    if not all(math.isfinite(v) for v in xyxy):
        return None, f"coordinates {xyxy} are not finite"
    if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
        return None, f"xmax < xmin or ymax < ymin in {xyxy} (columns swapped?)"
    return xyxy, None


def _raise_if_any(csv_file: str, problems: Sequence[str], what: str, fix: str) -> None:
    """Raise one VinDrDataError listing the first problems, their count and the fix."""
    if problems:
        shown = "; ".join(problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise VinDrDataError(f"{csv_file}: {len(problems)} {what}: {shown}{more}. Fix: {fix}.")
