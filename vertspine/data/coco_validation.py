"""Validation of a COCO json before detectron2 loads it, and the validated loader.

:func:`load_validated_coco_json` checks the raw json, before detectron2 silently remaps or drops
anything, then builds the records with detectron2's ``load_coco_json``, which also sets
``thing_classes`` and ``thing_dataset_id_to_contiguous_id`` in the dataset's metadata.

Errors (:class:`DatasetValidationError`, each naming the json file, the records and the fix):
a category count different from ``num_classes``; no categories or duplicate category ids;
``thing_classes`` metadata different from the json's names; duplicate image or annotation
ids; annotations referring to unknown images or categories; images without a positive
``width``/``height``; annotations without a 4-number bbox or with NaN/inf in it; image files
missing under ``image_root`` (existence only, nothing decoded). Boxes are fixed with a warning
giving their count and first ids: zero or negative width/height and boxes entirely outside
the image are skipped, boxes more than 1 px outside are clipped (closer ones are clipped
silently). Images without annotations are kept as negatives and counted at INFO.

Returned records are detectron2 standard dicts: absolute ``file_name``, ``height``, ``width``,
``image_id``, ``annotations`` with ``bbox`` in ``BoxMode.XYXY_ABS`` clipped to the image,
``category_id`` contiguous in 0..K-1 (categories sorted by json id), ``iscrowd`` and
``segmentation`` when present.
"""
import json
import logging
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence

from detectron2.data.datasets import load_coco_json
from detectron2.structures import BoxMode

__all__ = ["DatasetValidationError", "load_validated_coco_json"]

logger = logging.getLogger(__name__)
_BOX_TOLERANCE_PX = 1.0  # boxes further outside the image than this are reported as clipped
_SHOWN = 5  # how many offending records a message lists


class DatasetValidationError(ValueError):
    """A COCO json (or its images) is invalid; the message names the file, records and fix."""


def load_validated_coco_json(
    json_file: str,
    image_root: str,
    dataset_name: str,
    *,
    num_classes: Optional[int] = None,
    check_images: bool = True,
    thing_classes: Optional[Sequence[str]] = None,
) -> List[Dict[str, Any]]:
    """Validate a COCO json, then load it as detectron2 standard records (see module doc).

    Args:
        json_file: COCO instances json.
        image_root: folder the json's ``file_name`` entries are relative to.
        dataset_name: the ``MetadataCatalog`` entry that receives ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id``.
        num_classes: the number of categories required; None or 0 accepts any.
        check_images: check that every image file exists under ``image_root``.
        thing_classes: class names the json's categories (sorted by id) must have.
    Returns:
        list of records, boxes XYXY_ABS in image pixels, category ids contiguous.
    Raises:
        DatasetValidationError: the json or its images are invalid.
    """
    raw = _read_json(json_file)
    _check_categories(json_file, raw["categories"], num_classes, thing_classes)
    images = _index_images(json_file, raw["images"])
    _check_annotation_ids(json_file, raw["annotations"], images, raw["categories"])
    boxes = _clean_boxes(json_file, raw["annotations"], images)
    if check_images:
        _check_image_files(json_file, image_root, images.values())
    _log_negatives(json_file, images, raw["annotations"])
    records = load_coco_json(
        json_file, os.path.abspath(image_root), dataset_name, extra_annotation_keys=["id"]
    )
    return [_with_clean_boxes(record, boxes) for record in records]


def _read_json(json_file: str) -> Dict[str, Any]:
    """The parsed json, with 'images' and 'categories' lists and 'annotations' (default [])."""
    if not os.path.isfile(json_file):
        raise DatasetValidationError(
            f"COCO json {json_file} does not exist: check the path, or the dataset's prepare step."
        )
    try:
        with open(json_file, encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetValidationError(f"{json_file} is not valid JSON ({e}); fix or re-export it.")
    if not isinstance(raw, dict):
        raise DatasetValidationError(f"{json_file}: the top level is not a JSON object.")
    raw.setdefault("annotations", [])
    for key in ("images", "categories", "annotations"):
        if not isinstance(raw.get(key), list):
            raise DatasetValidationError(
                f"{json_file}: '{key}' is missing or not a list; a COCO json needs 'images', "
                "'annotations' and 'categories' lists."
            )
    return raw


def _check_categories(
    json_file: str,
    categories: List[Dict[str, Any]],
    num_classes: Optional[int],
    thing_classes: Optional[Sequence[str]],
) -> None:
    """Category ids unique, their count equal to ``num_classes``, names equal ``thing_classes``."""
    if not categories:
        raise DatasetValidationError(f"{json_file} has no categories; add its classes.")
    _raise_if_any(
        json_file,
        [c for c in categories if not (_is_int(c.get("id")) and isinstance(c.get("name"), str))],
        "categories lack an integer 'id' or a 'name'",
        'write each category as {"id": <int>, "name": <str>}',
    )
    ids = [c["id"] for c in categories]
    _raise_if_any(
        json_file, _duplicates(ids), "category ids are not unique", "give each category one id"
    )
    names = [c.get("name") for c in sorted(categories, key=lambda c: c["id"])]
    if num_classes and len(ids) != num_classes:
        raise DatasetValidationError(
            f"{json_file} has {len(ids)} categories {names}, but the config has "
            f"{num_classes} classes (MODEL.ROI_HEADS.NUM_CLASSES / DATASETS.COCO_NUM_CLASSES): "
            f"set it to {len(ids)}, or fix the json's categories."
        )
    if thing_classes is not None and list(thing_classes) != names:
        raise DatasetValidationError(
            f"{json_file}: categories sorted by id are named {names}, but the dataset's "
            f"thing_classes metadata is {list(thing_classes)}: make them equal."
        )
    if sorted(ids) != list(range(1, len(ids) + 1)):
        logger.info(
            f"{json_file}: category ids {sorted(ids)} are not 1..{len(ids)}; they map to "
            f"contiguous ids 0..{len(ids) - 1} in id order."
        )


def _index_images(json_file: str, images: List[Dict[str, Any]]) -> Dict[Any, Dict[str, Any]]:
    """Images by id; ids must be unique and each needs a file_name and positive width/height."""
    _raise_if_any(
        json_file,
        _duplicates(image.get("id") for image in images),
        "image ids are not unique",
        "give each image its own id",
    )
    _raise_if_any(
        json_file,
        [
            f"image id {image.get('id')} ({image.get('file_name')})"
            for image in images
            if "id" not in image
            or not image.get("file_name")
            or not (_is_positive(image.get("width")) and _is_positive(image.get("height")))
        ],
        "images lack an 'id', a 'file_name' or a positive 'width'/'height'",
        "write each image's id, file_name and size in pixels into the json",
    )
    return {image["id"]: image for image in images}


def _check_annotation_ids(
    json_file: str,
    annotations: List[Dict[str, Any]],
    images: Dict[Any, Dict[str, Any]],
    categories: List[Dict[str, Any]],
) -> None:
    """Annotation ids present and unique; image and category ids refer to existing entries."""
    category_ids = {c["id"] for c in categories}
    _raise_if_any(
        json_file,
        [f"annotation #{i}" for i, a in enumerate(annotations) if "id" not in a],
        "annotations have no 'id'",
        "give every annotation a unique id",
    )
    _raise_if_any(
        json_file,
        _duplicates(a["id"] for a in annotations),
        "annotation ids are not unique",
        "give each annotation its own id",
    )
    _raise_if_any(
        json_file,
        [f"annotation id {a['id']} -> image_id {a.get('image_id')}" for a in annotations
         if a.get("image_id") not in images],
        "annotations refer to image ids not in 'images'",
        "add those images or remove the annotations",
    )
    _raise_if_any(
        json_file,
        [f"annotation id {a['id']} -> category_id {a.get('category_id')}" for a in annotations
         if a.get("category_id") not in category_ids],
        f"annotations have a category_id not among the categories {sorted(category_ids)}",
        "correct their category_id, or add the category",
    )


def _clean_boxes(
    json_file: str, annotations: List[Dict[str, Any]], images: Dict[Any, Dict[str, Any]]
) -> Dict[Any, List[float]]:
    """The kept boxes, XYXY_ABS clipped to their image, by annotation id (skipped ones absent).

    Raises on malformed or non-finite boxes; warns, with counts, about skipped/clipped ones.
    """
    _raise_if_any(
        json_file,
        [f"annotation id {a['id']}: bbox {a.get('bbox')}" for a in annotations
         if not _is_xywh(a.get("bbox"))],
        "annotations have no bbox of 4 finite numbers [x, y, width, height]",
        "correct or remove those annotations",
    )
    kept: Dict[Any, List[float]] = {}
    problems: Dict[str, List[Any]] = {"degenerate": [], "outside": [], "clipped": []}
    for annotation in annotations:
        image = images[annotation["image_id"]]
        problem, box = _clip_box(annotation["bbox"], image["width"], image["height"])
        if problem:
            problems[problem].append(annotation["id"])
        if box is not None:
            kept[annotation["id"]] = box
    _warn_boxes(json_file, problems["degenerate"], "have zero or negative width/height: skipped")
    _warn_boxes(json_file, problems["outside"], "lie entirely outside their image: skipped")
    _warn_boxes(
        json_file,
        problems["clipped"],
        f"extend more than {_BOX_TOLERANCE_PX:g} px outside their image: clipped to it",
    )
    return kept


def _clip_box(xywh: Sequence[float], width: float, height: float):
    """Classify a COCO XYWH box in a ``width`` x ``height`` image and clip it.

    Returns:
        (problem, box): problem is None, "degenerate", "outside" or "clipped"; box is the
        XYXY_ABS box clipped to [0, width] x [0, height], or None when the box is skipped.
    """
    x, y, w, h = (float(v) for v in xywh)
    if w <= 0 or h <= 0:
        return "degenerate", None
    x0, y0, x1, y1 = x, y, x + w, y + h
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return "outside", None
    tol = _BOX_TOLERANCE_PX
    beyond = x0 < -tol or y0 < -tol or x1 > width + tol or y1 > height + tol
    box = [max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))]
    return ("clipped" if beyond else None), box


def _check_image_files(json_file: str, image_root: str, images: Iterable[Dict[str, Any]]) -> None:
    """Every image file exists under ``image_root`` (not decoded)."""
    _raise_if_any(
        json_file,
        [
            os.path.join(image_root, image["file_name"])
            for image in images
            if not os.path.isfile(os.path.join(image_root, image["file_name"]))
        ],
        f"image files are missing under image_root {image_root}",
        "check image_root, or copy or generate the images",
    )


def _log_negatives(
    json_file: str, images: Dict[Any, Dict[str, Any]], annotations: List[Dict[str, Any]]
) -> None:
    """Count, at INFO, the images without annotations (kept as negatives)."""
    annotated = {a["image_id"] for a in annotations}
    negatives = sum(1 for image_id in images if image_id not in annotated)
    if negatives:
        logger.info(
            f"{json_file}: {negatives} of {len(images)} images have no annotations; "
            "kept as negatives."
        )


def _with_clean_boxes(record: Dict[str, Any], boxes: Dict[Any, List[float]]) -> Dict[str, Any]:
    """A ``load_coco_json`` record with skipped annotations removed and boxes replaced."""
    annotations = []
    for annotation in record["annotations"]:
        annotation_id = annotation.pop("id")
        if annotation_id in boxes:
            annotation.update(bbox=boxes[annotation_id], bbox_mode=BoxMode.XYXY_ABS)
            annotations.append(annotation)
    record["annotations"] = annotations
    return record


def _warn_boxes(json_file: str, annotation_ids: List[Any], what: str) -> None:
    """One warning with the count and the first ids of annotations whose boxes ``what``."""
    if annotation_ids:
        logger.warning(
            f"{json_file}: {len(annotation_ids)} annotation boxes {what} "
            f"(annotation ids {_first(annotation_ids)})."
        )


def _raise_if_any(json_file: str, offenders: List[Any], problem: str, fix: str) -> None:
    """Raise a DatasetValidationError listing the count and the first ``offenders``."""
    if offenders:
        raise DatasetValidationError(
            f"{json_file}: {len(offenders)} {problem}: {_first(offenders)}. Fix: {fix}."
        )


def _duplicates(values: Iterable[Any]) -> List[Any]:
    """Values occurring more than once, each listed once, in first-seen order."""
    seen, repeated = set(), {}
    for value in values:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def _first(items: Sequence[Any]) -> str:
    """The first few items, comma separated, with '...' when there are more."""
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (", ..." if len(items) > _SHOWN else "")


def _is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (bool excluded)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value: Any) -> bool:
    """Whether ``value`` is a finite positive number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def _is_xywh(bbox: Any) -> bool:
    """Whether ``bbox`` is a list of 4 finite numbers."""
    return (
        isinstance(bbox, (list, tuple))
        and len(bbox) == 4
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
    )
