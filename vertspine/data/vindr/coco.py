"""VinDr-SpineXR records to COCO jsons: box clipping, the patient-level split, class counts.

COCO written here: categories ids 1..7 in
:data:`~vertspine.data.spine_categories.LESION_CLASSES` order (names in the dataset spelling);
every image listed, normal ones without annotations (negatives); each image
entry carries ``study_id``, ``series_id`` and the image-level label ``abnormal`` (0/1, see
:attr:`CsvImage.abnormal`); each annotation its ``rad_id``. ``bbox`` is [x, y, w, h] in the
written PNG's pixels: the CSV box is clipped to the native image [0, W] x [0, H], dropped when a
side is then below :data:`MIN_BOX_SIDE` native pixels, and scaled by (w/W, h/H) when the PNG
was downscaled.
"""
import collections
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..spine_categories import LESION_CLASSES
from .annotations import CsvImage

__all__ = [
    "MIN_BOX_SIDE",
    "BoxStats",
    "ImageSize",
    "build_coco",
    "class_count_report",
    "format_report",
    "grouping_report",
    "split_studies",
    "study_groups",
]

MIN_BOX_SIDE = 1e-3  # native pixels; upstream's dataset_dict.py drops smaller sides too


@dataclass(frozen=True)
class ImageSize:
    """Native DICOM size and written PNG size of one image, (height, width) in pixels."""

    native: Tuple[int, int]
    output: Tuple[int, int]


@dataclass
class BoxStats:
    """Boxes changed while building a json: clipped to the image, dropped as degenerate."""

    clipped: int = 0
    dropped: int = 0


def study_groups(images: Mapping[str, CsvImage],
                 patient_ids: Mapping[str, str]) -> List[List[str]]:
    """The studies that must land in one split: those of one patient.

    Studies are linked when images of theirs carry the same DICOM PatientID, transitively (the
    connected components of the study-patient graph, ``scipy.sparse.csgraph``); a study none of
    whose images has a PatientID is a group of its own (the fallback to study-level grouping).

    Args:
        images: CSV records by image_id.
        patient_ids: PatientID by image_id, "" (or missing) where the DICOM has none.
    Returns:
        the groups, each a sorted list of study ids, sorted by their first study.
    """
    studies = sorted({image.study_id for image in images.values()})
    patients = sorted({patient_ids.get(i, "") for i in images} - {""})
    node = {name: k for k, name in enumerate(studies + patients)}
    edges = [(node[image.study_id], node[patient_ids[i]])
             for i, image in images.items() if patient_ids.get(i, "")]
    rows, cols = zip(*edges) if edges else ((), ())
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(node), len(node)))
    _, labels = connected_components(graph, directed=False)
    groups: Dict[int, List[str]] = collections.defaultdict(list)
    for study in studies:
        groups[labels[node[study]]].append(study)
    return sorted(groups.values())


def split_studies(
    images: Mapping[str, CsvImage], val_fraction: float, seed: int,
    patient_ids: Optional[Mapping[str, str]] = None,
) -> Tuple[List[str], List[str]]:
    """Carve a validation split out of the training CSV, by patient (by study without PatientID).

    The :func:`study_groups` are permuted by ``numpy.random.default_rng(seed)``; the first
    ``max(1, round(val_fraction * n_groups))`` are validation groups. Every image of a patient
    (of a study, where the DICOMs carry no PatientID) goes to the same side. Without any
    PatientID the groups are the sorted studies, and the split is the study-level one.

    Args:
        images: the training CSV's images.
        val_fraction: share of groups (patients) for validation, in (0, 1).
        seed: seed of the permutation (same seed, CSV and PatientIDs: same split).
        patient_ids: PatientID by image_id ("" = none); None: group by study.
    Returns:
        (train image_ids, val image_ids), each sorted.
    Raises:
        ValueError: ``val_fraction`` outside (0, 1), or fewer than 2 groups.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    groups = study_groups(images, patient_ids or {})
    if len(groups) < 2:
        raise ValueError(f"The training CSV's studies form {len(groups)} patient group (studies "
                         "sharing a DICOM PatientID): cannot carve a validation split from it.")
    order = np.random.default_rng(seed).permutation(len(groups))
    num_val = min(len(groups) - 1, max(1, round(val_fraction * len(groups))))
    val_studies = {study for k in order[:num_val] for study in groups[k]}
    train = sorted(i for i, image in images.items() if image.study_id not in val_studies)
    val = sorted(i for i, image in images.items() if image.study_id in val_studies)
    return train, val


def grouping_report(images: Mapping[str, CsvImage],
                    patient_ids: Mapping[str, str]) -> Dict[str, Any]:
    """How the validation split was grouped: ``unit`` ("patient", "study", or "patient, study
    where no PatientID"), ``patients``, ``studies``, ``studies_without_patient_id``, ``groups``."""
    studies = {image.study_id for image in images.values()}
    with_id = {image.study_id for i, image in images.items() if patient_ids.get(i, "")}
    without = len(studies - with_id)
    unit = ("study" if not with_id else "patient" if not without
            else "patient, study where no PatientID")
    return {"unit": unit,
            "patients": len({patient_ids.get(i, "") for i in images} - {""}),
            "studies": len(studies), "studies_without_patient_id": without,
            "groups": len(study_groups(images, patient_ids))}


def build_coco(
    image_ids: Sequence[str],
    images: Mapping[str, CsvImage],
    sizes: Mapping[str, ImageSize],
    description: str,
) -> Tuple[Dict[str, Any], BoxStats]:
    """The COCO json of one split (format in the module docstring).

    Args:
        image_ids: the split's images, in json order (ids 1..N in this order).
        images: CSV records by image_id.
        sizes: native and written sizes by image_id.
        description: ``info.description`` of the json.
    Returns:
        (COCO dict, boxes clipped/dropped).
    """
    stats = BoxStats()
    coco_images, annotations = [], []
    for number, image_id in enumerate(image_ids, start=1):
        record, size = images[image_id], sizes[image_id]
        coco_images.append({
            "id": number, "file_name": f"{image_id}.png",
            "height": size.output[0], "width": size.output[1],
            "study_id": record.study_id, "series_id": record.series_id,
            "abnormal": record.abnormal,
        })
        for box in record.boxes:
            xywh = _clip_and_scale(box.xyxy, size, stats)
            if xywh is None:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": number,
                "category_id": box.class_index + 1, "bbox": xywh,
                "area": round(xywh[2] * xywh[3], 3), "iscrowd": 0, "rad_id": box.rad_id,
            })
    categories = [{"id": i + 1, "name": name, "supercategory": "lesion"}
                  for i, name in enumerate(LESION_CLASSES)]
    coco = {"info": {"description": description}, "licenses": [], "images": coco_images,
            "annotations": annotations, "categories": categories}
    return coco, stats


def _clip_and_scale(xyxy, size: ImageSize, stats: BoxStats):
    """[x, y, w, h] in output pixels, or None when degenerate after clipping (counted)."""
    height, width = size.native
    clipped = (min(max(xyxy[0], 0.0), width), min(max(xyxy[1], 0.0), height),
               min(max(xyxy[2], 0.0), width), min(max(xyxy[3], 0.0), height))
    if clipped[2] - clipped[0] < MIN_BOX_SIDE or clipped[3] - clipped[1] < MIN_BOX_SIDE:
        stats.dropped += 1
        return None
    if clipped != tuple(xyxy):
        stats.clipped += 1
    sx, sy = size.output[1] / width, size.output[0] / height
    x0, y0, x1, y1 = clipped[0] * sx, clipped[1] * sy, clipped[2] * sx, clipped[3] * sy
    return [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)]


def class_count_report(coco: Mapping[str, Any]) -> Dict[str, Any]:
    """Counts of one COCO split: images, studies, labels, boxes, images and boxes per class."""
    boxes_per_class = collections.Counter(a["category_id"] for a in coco["annotations"])
    images_per_class = collections.Counter(
        category for category, _ in {(a["category_id"], a["image_id"]) for a in coco["annotations"]}
    )
    abnormal = sum(image["abnormal"] for image in coco["images"])
    return {
        "images": len(coco["images"]),
        "studies": len({image["study_id"] for image in coco["images"]}),
        "abnormal_images": abnormal,
        "normal_images": len(coco["images"]) - abnormal,
        "images_with_boxes": len({a["image_id"] for a in coco["annotations"]}),
        "boxes": len(coco["annotations"]),
        "classes": {
            c["name"]: {"images": images_per_class[c["id"]], "boxes": boxes_per_class[c["id"]]}
            for c in coco["categories"]
        },
    }


def format_report(report: Mapping[str, Any]) -> str:
    """A text table of a conversion report (``report["splits"][split]`` as made above)."""
    splits = list(report["splits"])
    lines = [f"{'':24s}" + "".join(f"{s:>18s}" for s in splits)]
    rows = [("images", "images"), ("studies", "studies"), ("abnormal images", "abnormal_images"),
            ("normal images", "normal_images"), ("images with boxes", "images_with_boxes"),
            ("boxes", "boxes"), ("boxes clipped", "boxes_clipped"),
            ("boxes dropped", "boxes_dropped")]
    for title, key in rows:
        lines.append(f"{title:24s}" + "".join(
            f"{report['splits'][s].get(key, 0):>18d}" for s in splits))
    lines.append("per class: images / boxes")
    for name in LESION_CLASSES:
        cells = "".join(
            f"{report['splits'][s]['classes'][name]['images']:>9d} /"
            f"{report['splits'][s]['classes'][name]['boxes']:>6d} " for s in splits)
        lines.append(f"  {name:22s}" + cells)
    return "\n".join(lines)
