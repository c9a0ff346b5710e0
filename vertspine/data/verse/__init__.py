"""VerSe 2019/2020 CT volumes as 2-D sagittal slices with vertebra-level boxes (COCO json).

Modules: :mod:`.labels` (VerSe numbering, the 25 categories), :mod:`.discovery` (files and
patient-level splits), :mod:`.volume` (orientation, mid-sagittal centre, rendering, boxes),
:mod:`.convert` (the conversion and its report). Command line: ``tools/convert_verse.py``.
"""
from .convert import ConversionReport, VerseConversionConfig, convert_verse, verse_output_paths
from .discovery import VerseScan, assign_splits, find_verse_scans
from .labels import T13_LABEL, verse_categories

__all__ = [
    "ConversionReport",
    "T13_LABEL",
    "VerseConversionConfig",
    "VerseScan",
    "assign_splits",
    "convert_verse",
    "find_verse_scans",
    "verse_categories",
    "verse_output_paths",
]
