"""Converting the VinDr-SpineXR release into PNGs + COCO jsons that vertspine registers.

Input (the PhysioNet release, ``vindr_root``)::

    annotations/{train,test}.csv
    {train,test}_images/<study_id>/<series_id>/<image_id>.dicom   (.dcm too; found recursively)

Output (``output``, default ``$VERTSPINE_DATASETS/vindr_spinexr``, what
``vindr_spinexr_{train,val,test}`` point at)::

    images/train/<image_id>.png     train and val images (val is carved from train)
    images/test/<image_id>.png
    annotations/{train,val,test}.json
    conversion_report.json          per split: images, studies, labels, boxes per class, ...;
                                    validation_grouping: patients, studies without PatientID
    vindr_manifest.json             max_size and bit_depth the PNGs were written with

The validation split is carved from ``train.csv`` by patient (:func:`split_studies`): studies
whose DICOMs carry one PatientID stay together; a study without PatientID is grouped alone
(logged, and counted in the report). The test CSV only ever becomes ``test.json``; a study
listed in both CSVs is refused, a PatientID in both is logged. Existing PNGs of the right size
are reused (a stopped conversion resumes); an output written with another
``max_size``/``bit_depth`` is refused unless ``overwrite``.
"""
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Tuple

from PIL import Image

from vertspine.utils.file_io import write_json, write_png

from ..datasets_root import datasets_root, require_converted_json
from ..spine_categories import SPLITS
from .annotations import NO_FINDING, CsvImage, VinDrDataError, read_vindr_csv
from .coco import ImageSize, build_coco, class_count_report, grouping_report, split_studies
from .images import dicom_to_png_array, find_dicoms, output_size, read_header, read_patient_ids

__all__ = [
    "CONVERT_COMMAND",
    "ConversionOptions",
    "convert_vindr",
    "default_vindr_root",
    "require_converted",
    "vindr_dataset_paths",
]

logger = logging.getLogger(__name__)
CONVERT_COMMAND = (
    "python tools/convert_vindr.py --vindr-root /path/to/vindr-spinexr --output {root}"
)
_SOURCES = ("train", "test")  # CSVs / DICOM folders of the release
_IMAGE_FOLDER = {"train": "train", "val": "train", "test": "test"}


@dataclass(frozen=True)
class ConversionOptions:
    """How to convert (the command-line flags of ``tools/convert_vindr.py``).

    Attributes:
        val_fraction: share of training patients (studies, where the DICOMs carry no
            PatientID) moved to the validation split, in (0, 1).
        seed: seed of the patient split.
        max_size: longest side of the PNGs in pixels (0 = native resolution).
        bit_depth: 8 or 16 bit PNGs.
        drop_invalid_boxes: skip CSV lesion rows with bad coordinates instead of failing.
        workers: processes converting DICOMs (1 = in this process).
        overwrite: rewrite existing PNGs, and accept an output made with other settings.
    """

    val_fraction: float = 0.1
    seed: int = 0
    max_size: int = 0
    bit_depth: int = 8
    drop_invalid_boxes: bool = False
    workers: int = 1
    overwrite: bool = False


def default_vindr_root() -> str:
    """``$VERTSPINE_DATASETS/vindr_spinexr``, with ``datasets`` when the variable is unset."""
    return datasets_root("vindr_spinexr")


def vindr_dataset_paths(root: str) -> Dict[str, Any]:
    """Where a converted dataset keeps its files (nothing is created).

    Returns:
        dict with ``report`` and ``manifest`` paths and, per split (train/val/test), a dict
        with ``json`` and ``image_root``.
    """
    paths: Dict[str, Any] = {
        "report": os.path.join(root, "conversion_report.json"),
        "manifest": os.path.join(root, "vindr_manifest.json"),
    }
    for split in SPLITS:
        paths[split] = {
            "json": os.path.join(root, "annotations", f"{split}.json"),
            "image_root": os.path.join(root, "images", _IMAGE_FOLDER[split]),
        }
    return paths


def require_converted(root: str, split: str) -> None:
    """Raise FileNotFoundError naming the missing json and the command that writes it."""
    require_converted_json(vindr_dataset_paths(root)[split]["json"],
                           f"VinDr-SpineXR split '{split}'", CONVERT_COMMAND.format(root=root),
                           "vindr_spinexr")


def convert_vindr(vindr_root: str, output: str, options: ConversionOptions) -> Dict[str, Any]:
    """Convert the release under ``vindr_root`` into ``output`` (layout in the module doc).

    Returns:
        the conversion report (also written to ``conversion_report.json``).
    Raises:
        FileNotFoundError: a CSV or DICOM folder is missing.
        VinDrDataError: bad CSV rows, a study in both train.csv and test.csv, CSV images
            without a DICOM, or an output converted with other settings; the message names the
            files/rows and the fix.
    """
    images, invalid = {}, {}
    for source in _SOURCES:
        csv_file = os.path.join(vindr_root, "annotations", f"{source}.csv")
        images[source], invalid[source] = read_vindr_csv(csv_file, options.drop_invalid_boxes)
    _refuse_shared_studies(vindr_root, images)
    dicoms = {s: _match_dicoms(vindr_root, s, images[s]) for s in _SOURCES}
    paths = vindr_dataset_paths(output)
    _check_manifest(paths["manifest"], options)
    write_json(paths["manifest"], {"max_size": options.max_size, "bit_depth": options.bit_depth})
    sizes = {s: _convert_images(dicoms[s], paths[s]["image_root"], options) for s in _SOURCES}
    patient_ids = {s: read_patient_ids(dicoms[s]) for s in _SOURCES}
    ids = dict(zip(("train", "val"), split_studies(images["train"], options.val_fraction,
                                                   options.seed, patient_ids["train"])))
    ids["test"] = sorted(images["test"])
    report: Dict[str, Any] = {"options": asdict(options), "splits": {},
                              "validation_grouping": _log_grouping(images, patient_ids)}
    for split in SPLITS:
        source = _IMAGE_FOLDER[split]
        coco, stats = build_coco(ids[split], images[source], sizes[source],
                                 f"VinDr-SpineXR {split} (converted by vertspine)")
        write_json(paths[split]["json"], coco)
        report["splits"][split] = {**class_count_report(coco), "boxes_clipped": stats.clipped,
                                   "boxes_dropped": stats.dropped}
    report["invalid_rows_dropped"] = invalid
    report["mixed_label_images"] = {
        s: sum(1 for image in images[s].values() if image.no_finding and image.boxes)
        for s in _SOURCES
    }
    report["notes"] = (
        "Boxes of several radiologists (rad_id) are kept as-is, not fused. 'abnormal' is 0 when "
        f"any row of the image is '{NO_FINDING}', else 1 (upstream's rule); mixed_label_images "
        "counts images with both. Validation images come from train.csv only, split by DICOM "
        "PatientID (by study where the DICOMs carry none): see validation_grouping."
    )
    write_json(paths["report"], report)
    logger.info("VinDr-SpineXR converted into %s (report: %s)", output, paths["report"])
    return report


def _log_grouping(images: Mapping[str, Mapping[str, CsvImage]],
                  patient_ids: Mapping[str, Mapping[str, str]]) -> Dict[str, Any]:
    """The validation grouping's report (:func:`grouping_report`), logged; also warns of
    PatientIDs in both train.csv and test.csv (the release's split, kept, but a leak to know)."""
    grouping = grouping_report(images["train"], patient_ids["train"])
    if grouping["unit"] == "patient":
        logger.info("Validation split by PatientID: %d patients, %d studies.",
                    grouping["patients"], grouping["studies"])
    else:
        logger.warning("%d of %d training studies have no PatientID in their DICOMs: each is "
                       "grouped on its own for the validation split, so studies of one patient "
                       "may land in both train and val.", grouping["studies_without_patient_id"],
                       grouping["studies"])
    shared = sorted((set(patient_ids["train"].values()) & set(patient_ids["test"].values())) - {""})
    if shared:
        logger.warning("%d PatientIDs have images in both train.csv and test.csv (e.g. %s): the "
                       "release's test split shares these patients with training.",
                       len(shared), ", ".join(shared[:5]))
    return {**grouping, "patients_in_train_and_test": len(shared)}


def _refuse_shared_studies(vindr_root: str, images: Mapping[str, Mapping[str, CsvImage]]) -> None:
    """Error naming the studies that both train.csv and test.csv list (test images would leak
    into training: same patient and visit)."""
    first_line = {source: _first_line_of_each_study(images[source]) for source in _SOURCES}
    shared = sorted(set(first_line["train"]) & set(first_line["test"]))
    if shared:
        listed = "; ".join(f"{study} (train.csv line {first_line['train'][study]}, test.csv line "
                           f"{first_line['test'][study]})" for study in shared[:10])
        listed += " ..." if len(shared) > 10 else ""
        raise VinDrDataError(
            f"{os.path.join(vindr_root, 'annotations')}: {len(shared)} study_ids are in both "
            f"train.csv and test.csv: {listed}. Their test images would be trained on. Fix: keep "
            "each study in one CSV (delete its rows from train.csv, or from test.csv) and rerun."
        )


def _first_line_of_each_study(images: Mapping[str, CsvImage]) -> Dict[str, int]:
    """CSV line of each study's first row (``images`` is in CSV order, as read)."""
    first: Dict[str, int] = {}
    for record in images.values():
        first.setdefault(record.study_id, record.lines[0])
    return first


def _match_dicoms(vindr_root: str, source: str, images: Mapping[str, CsvImage]) -> Dict[str, str]:
    """DICOM path of every CSV image; error listing CSV images without one."""
    folder = os.path.join(vindr_root, f"{source}_images")
    found = find_dicoms(folder)
    missing = [
        f"{image_id} (line {record.lines[0]}; expected e.g. "
        f"{os.path.join(folder, record.study_id, record.series_id, image_id)}.dicom)"
        for image_id, record in images.items() if image_id not in found
    ]
    if missing:
        raise VinDrDataError(
            f"{os.path.join(vindr_root, 'annotations', source + '.csv')}: {len(missing)} image_ids "
            f"have no DICOM under {folder}: {'; '.join(missing[:5])}. Fix: download/copy the "
            "missing files (any sub-folder, named <image_id>.dicom or .dcm), or delete their rows."
        )
    extra = len(set(found) - set(images))
    if extra:
        logger.warning("%s: %d DICOMs have no row in %s.csv; they are not converted.",
                       folder, extra, source)
    return {image_id: found[image_id] for image_id in images}


def _check_manifest(manifest: str, options: ConversionOptions) -> None:
    """Refuse to mix PNGs of different settings in one output folder."""
    if options.overwrite or not os.path.isfile(manifest):
        return
    with open(manifest, encoding="utf-8") as f:
        previous = json.load(f)
    wanted = {"max_size": options.max_size, "bit_depth": options.bit_depth}
    if previous != wanted:
        raise VinDrDataError(
            f"{manifest}: this output was converted with {previous}, now {wanted} is asked. "
            "Use another --output, or pass --overwrite to rewrite every PNG."
        )


def _convert_images(
    dicoms: Mapping[str, str], image_root: str, options: ConversionOptions
) -> Dict[str, ImageSize]:
    """Write (or reuse) the PNG of every DICOM; their native and written sizes by image_id."""
    jobs = [(image_id, path, os.path.join(image_root, f"{image_id}.png"), options.max_size,
             options.bit_depth, options.overwrite) for image_id, path in dicoms.items()]
    if options.workers > 1:
        with ProcessPoolExecutor(options.workers) as pool:
            results = list(pool.map(_convert_one, jobs, chunksize=8))
    else:
        results = [_convert_one(job) for job in jobs]
    return {image_id: size for image_id, size in results}


def _convert_one(job: Tuple[str, str, str, int, int, bool]) -> Tuple[str, ImageSize]:
    """One DICOM -> PNG, or reuse of an existing PNG of the expected size."""
    image_id, dicom_path, png_path, max_size, bit_depth, overwrite = job
    if not overwrite and os.path.isfile(png_path):
        header = read_header(dicom_path, ["Rows", "Columns"])
        native = (int(header.Rows), int(header.Columns))
        with Image.open(png_path) as png:
            written = (png.height, png.width)
        if written == output_size(native, max_size):
            return image_id, ImageSize(native, written)
    pixels, native = dicom_to_png_array(dicom_path, max_size, bit_depth)
    write_png(png_path, pixels)
    return image_id, ImageSize(native, pixels.shape[:2])
