"""Named image-level classification datasets derived from vertspine's detection datasets.

- ``phantom_abnormal_{train,val,test}``: ``phantom_lesions_*`` read as normal (no lesion annotation,
  label 0; about 30% of the images) vs abnormal (any lesion, label 1).
- ``vindr_spinexr_cls_{train,val,test}``: ``vindr_spinexr_*`` (registered by the VinDr-SpineXR
  converter's datasets) labelled by each image's ``abnormal`` field (0 when the radiologists
  wrote "No finding", else 1 - so an abnormal image may have no box, e.g. when its boxes were
  too small to keep). A missing field is an error, never guessed from the boxes.

All are views (:func:`register_classification_view`): registered at import, the source dataset
is loaded (and the phantom data generated) only when a view is first used, and a source that is
re-registered elsewhere (another phantom root) is followed. Metadata: ``thing_classes``
["normal", "abnormal"] (detectron2's name for ``class_names``), ``evaluator_type``
"classification", ``split``.
"""
import json
import os
import shutil
from typing import Any, Dict

from detectron2.data import DatasetCatalog

from .image_label_datasets import register_classification_view
from .spine_categories import SPLITS

__all__ = [
    "ABNORMAL_CLASS_NAMES",
    "CLASSIFICATION_DATASET_NAMES",
    "export_abnormal_image_folder",
    "label_abnormal_field",
    "label_any_annotation",
    "register_builtin_classification_datasets",
]

ABNORMAL_CLASS_NAMES = ("normal", "abnormal")
_VIEWS = {
    **{f"phantom_abnormal_{s}": (f"phantom_lesions_{s}", "any") for s in SPLITS},
    **{f"vindr_spinexr_cls_{s}": (f"vindr_spinexr_{s}", "field") for s in SPLITS},
}
CLASSIFICATION_DATASET_NAMES = tuple(_VIEWS)


def label_any_annotation(record: Dict[str, Any], raw_images: Dict[Any, Dict[str, Any]]) -> int:
    """1 when the record has any annotation, else 0."""
    return int(bool(record.get("annotations")))


def label_abnormal_field(record: Dict[str, Any], raw_images: Dict[Any, Dict[str, Any]]) -> int:
    """The image's ``abnormal`` (0/1): from the record, else from its json image entry.

    Raises:
        ValueError: neither has it, or it is not 0/1.
    """
    value = record.get("abnormal", raw_images.get(record.get("image_id"), {}).get("abnormal"))
    if value not in (0, 1, True, False):
        raise ValueError(
            f"Image {record.get('image_id')} ({record.get('file_name')}) has abnormal={value!r}; "
            "the VinDr-SpineXR json must give every image \"abnormal\": 0 or 1 (re-run the "
            "converter).")
    return int(value)


def register_builtin_classification_datasets() -> None:
    """Register the views of this module's docstring (names already registered are kept)."""
    labels = {"any": label_any_annotation, "field": label_abnormal_field}
    for name, (source, rule) in _VIEWS.items():
        if name not in DatasetCatalog:
            register_classification_view(name, source, labels[rule], ABNORMAL_CLASS_NAMES,
                                         split=name.rsplit("_", 1)[1])


def export_abnormal_image_folder(json_file: str, image_root: str, out_root: str) -> Dict[str, int]:
    """Copy a lesion COCO json's images into ``out_root/{normal,abnormal}/`` (ImageFolder).

    An image is abnormal when it has any annotation. Register the result with
    ``register_image_folder(name, out_root, classes=ABNORMAL_CLASS_NAMES)`` (labels 0 normal,
    1 abnormal, as the views; sorted folder order would make "abnormal" label 0).

    Returns:
        The number of images per class.
    """
    with open(json_file, encoding="utf-8") as f:
        raw = json.load(f)
    annotated = {a["image_id"] for a in raw.get("annotations", [])}
    counts = {name: 0 for name in ABNORMAL_CLASS_NAMES}
    for name in ABNORMAL_CLASS_NAMES:
        os.makedirs(os.path.join(out_root, name), exist_ok=True)
    for image in raw["images"]:
        name = ABNORMAL_CLASS_NAMES[int(image["id"] in annotated)]
        shutil.copyfile(os.path.join(image_root, image["file_name"]),
                        os.path.join(out_root, name, os.path.basename(image["file_name"])))
        counts[name] += 1
    return counts
