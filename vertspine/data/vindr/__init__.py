"""VinDr-SpineXR: converting the release (DICOM + CSV) into PNGs and COCO jsons.

Modules: :mod:`.annotations` (the CSVs: classes, rows, errors), :mod:`.images` (the one
DICOM -> PNG pipeline), :mod:`.coco` (jsons, patient-level split, class counts),
:mod:`.convert` (the whole conversion and the output layout). ``tools/convert_vindr.py`` is the
command line; :mod:`vertspine.data.builtin` registers ``vindr_spinexr_{train,val,test}``.
"""
from .annotations import (
    CSV_COLUMNS,
    NO_FINDING,
    CsvBox,
    CsvImage,
    VinDrDataError,
    read_vindr_csv,
)
from .coco import ImageSize, build_coco, class_count_report, format_report, split_studies
from .convert import (
    CONVERT_COMMAND,
    ConversionOptions,
    convert_vindr,
    default_vindr_root,
    require_converted,
    vindr_dataset_paths,
)
from .images import dicom_to_png_array, find_dicoms, output_size

__all__ = [
    "CONVERT_COMMAND",
    "CSV_COLUMNS",
    "ConversionOptions",
    "CsvBox",
    "CsvImage",
    "ImageSize",
    "NO_FINDING",
    "VinDrDataError",
    "build_coco",
    "class_count_report",
    "convert_vindr",
    "default_vindr_root",
    "dicom_to_png_array",
    "find_dicoms",
    "format_report",
    "output_size",
    "read_vindr_csv",
    "require_converted",
    "split_studies",
    "vindr_dataset_paths",
]
