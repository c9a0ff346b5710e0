"""Image-level classification datasets in detectron2's catalogs.

Records are ``{"file_name", "image_id", "label"[, "height", "width"]}`` with no ``annotations``
(so detectron2's empty-annotation filter and class histogram do not apply). Metadata:
``thing_classes`` (label i is ``thing_classes[i]``), ``evaluator_type "classification"`` and
``split`` ("train", "val", "test" or "" when unknown). The class names are stored as
``thing_classes`` because detectron2's ``Metadata`` silently renames a ``class_names`` entry to
``thing_classes`` anyway (reading ``.class_names`` still works, with a deprecation warning).
:func:`vertspine.data.check_num_classes` accepts ``MODEL.IMAGE_CLASSIFIER.NUM_CLASSES`` 1 (one
logit) for two class names.

- :func:`register_image_folder`: ImageFolder layout ``<root>/<class>/<image>``, classes in
  sorted order as ``torchvision.datasets.ImageFolder``, or in a given order.
- :func:`register_classification_view`: an image-level view of a registered detection dataset
  (its records loaded lazily), labelled by a function of each record.
"""
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import pydicom
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from .coco_registration import DatasetValidationError

__all__ = [
    "IMAGE_EXTENSIONS",
    "dataset_split",
    "register_classification_view",
    "register_image_folder",
    "register_image_folders_from_config",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
_SPLIT_SUFFIXES = {"train": ("_train",), "val": ("_val", "_valid", "_validation"),
                   "test": ("_test",)}


def dataset_split(name: str) -> str:
    """The split of a registered dataset: its ``split`` metadata, else inferred from the name's
    suffix (``_train``; ``_val``/``_valid``/``_validation``; ``_test``), else ""."""
    split = MetadataCatalog.get(name).get("split", None) if name in MetadataCatalog.list() else None
    if split is not None:
        return split
    for candidate, suffixes in _SPLIT_SUFFIXES.items():
        if name.endswith(suffixes):
            return candidate
    return ""


def _register(name: str, loader: Callable[[], List[Dict[str, Any]]], class_names: Sequence[str],
              split: Optional[str], **metadata: Any) -> None:
    if name in DatasetCatalog:
        raise ValueError(f"Dataset '{name}' is already registered; pick another name or call "
                         f"vertspine.data.unregister_dataset('{name}') first.")
    DatasetCatalog.register(name, loader)
    split = dataset_split(name) if split is None else split
    MetadataCatalog.get(name).set(thing_classes=list(class_names), evaluator_type="classification",
                                  split=split, **metadata)


def _image_size(path: str):
    """(height, width) read from the file header, without decoding the pixels."""
    if path.lower().endswith(".dcm"):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        return int(header.Rows), int(header.Columns)
    with Image.open(path) as image:
        return image.height, image.width


def _class_folders(root: str, name: str, classes: Optional[Sequence[str]]) -> List[str]:
    """The class order: ``classes`` (which must name exactly the sub-folders) or, without it,
    the sorted sub-folders."""
    if not os.path.isdir(root):
        raise DatasetValidationError(f"Dataset '{name}': image folder {root} does not exist; "
                                     "expected <root>/<class>/<image> files.")
    found = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DatasetValidationError(f"Dataset '{name}': {root} has no class sub-folders; "
                                     "expected <root>/<class>/<image> files.")
    if classes is None:
        return found
    if sorted(classes) != found or len(set(classes)) != len(classes):
        raise DatasetValidationError(
            f"Dataset '{name}': the class order {list(classes)} must name each sub-folder of "
            f"{root} once; the sub-folders are {found}.")
    return list(classes)


def _load_image_folder(root: str, name: str, classes: List[str]) -> List[Dict[str, Any]]:
    classes = _class_folders(root, name, classes)
    records, empty, unreadable = [], [], []
    for label, class_name in enumerate(classes):
        folder = os.path.join(root, class_name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            empty.append(class_name)
        for file in files:
            path = os.path.join(folder, file)
            try:
                height, width = _image_size(path)
            except Exception as e:  # noqa: BLE001 (any reader error means an unusable file)
                unreadable.append(f"{path} ({type(e).__name__}: {e})")
                continue
            records.append({"file_name": path, "image_id": f"{class_name}/{file}",
                            "label": label, "height": height, "width": width})
    if empty:
        raise DatasetValidationError(
            f"Dataset '{name}': class folders {empty} under {root} hold no images "
            f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folders.")
    if unreadable:
        raise DatasetValidationError(
            f"Dataset '{name}': {len(unreadable)} files cannot be read: {unreadable[:5]}; "
            "replace or remove them.")
    return records


def register_image_folder(name: str, root: str, *, classes: Optional[Sequence[str]] = None,
                          split: Optional[str] = None) -> List[str]:
    """Register an ImageFolder-style dataset ``<root>/<class>/<image>`` under ``name``.

    Label i is the i-th class of ``classes``, or, without it, of the sorted class folders (as
    torchvision's ImageFolder). Sorted order is often not the intended one: "abnormal" sorts
    before "normal", so a binary classifier's positive class (label 1) would be "normal"; pass
    ``classes=["normal", "abnormal"]``. The folders are listed now, the image headers read when
    the dataset is first loaded.

    Args:
        name: dataset name for ``DATASETS.TRAIN``/``TEST``.
        root: the folder of class folders.
        classes: the class order (exactly the sub-folder names); None = sorted.
        split: "train", "val", "test"; None infers it from the name (see :func:`dataset_split`).
    Returns:
        The class names, in label order.
    Raises:
        DatasetValidationError: ``root`` is missing, has no class folders or other folders than
            ``classes`` (at registration); a class folder is empty or a file is unreadable
            (when loading).
    """
    root = os.path.abspath(root)
    classes = _class_folders(root, name, classes)
    _register(name, lambda: _load_image_folder(root, name, classes), classes, split,
              image_root=root)
    return classes


def register_image_folders_from_config(cfg) -> List[str]:
    """Register every ``[name, root]`` or ``[name, root, [class, ...]]`` (class order) of
    ``cfg.DATASETS.IMAGE_FOLDER``; returns the names."""
    names = []
    for entry in cfg.DATASETS.get("IMAGE_FOLDER", []):
        if not (isinstance(entry, (list, tuple)) and len(entry) in (2, 3)
                and (len(entry) == 2 or isinstance(entry[2], (list, tuple)))):
            raise ValueError(f"DATASETS.IMAGE_FOLDER entry {entry!r} is not of the form "
                             "[name, root] or [name, root, [class, ...]], e.g. "
                             "['brain_train', 'datasets/brain/Training'].")
        if entry[0] not in DatasetCatalog:
            register_image_folder(entry[0], entry[1],
                                  classes=list(entry[2]) if len(entry) == 3 else None)
        names.append(entry[0])
    return names


def register_classification_view(
    name: str, source: str, label_fn: Callable[[Dict[str, Any], Dict[Any, Dict[str, Any]]], int],
    class_names: Sequence[str], *, split: Optional[str] = None,
) -> None:
    """Register ``name`` as an image-level view of the registered dataset ``source``.

    ``source`` is looked up when ``name`` is first loaded (so it may be registered later, and
    re-registering it is followed).

    Args:
        name: the classification dataset's name.
        source: a detection dataset's name in ``DatasetCatalog``.
        label_fn: ``(record, raw_images) -> label``; ``raw_images`` maps image id to the
            source json's image entry (read from its ``json_file`` metadata; {} without one),
            for image-level fields that detectron2's COCO loader drops (e.g. ``abnormal``).
        class_names: label i is ``class_names[i]``.
        split: as in :func:`register_image_folder`.
    """

    def load() -> List[Dict[str, Any]]:
        if source not in DatasetCatalog:
            raise KeyError(f"Dataset '{name}' is a view of '{source}', which is not registered; "
                           f"register '{source}' (e.g. convert its data first).")
        records = DatasetCatalog.get(source)
        raw_images = _raw_images(MetadataCatalog.get(source).get("json_file", None))
        keep = ("file_name", "image_id", "height", "width")
        return [{**{k: r[k] for k in keep if k in r}, "label": int(label_fn(r, raw_images))}
                for r in records]

    _register(name, load, class_names, split, source_dataset=source)


def _raw_images(json_file: Optional[str]) -> Dict[Any, Dict[str, Any]]:
    """Image entries of a COCO json by id ({} when there is no json)."""
    if not json_file:
        return {}
    with open(json_file, encoding="utf-8") as f:
        return {image["id"]: image for image in json.load(f).get("images", [])}
