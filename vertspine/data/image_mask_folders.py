"""Semantic segmentation datasets from an image folder and a mask folder with the same filenames.

    register_image_mask_folders("kvasir_train", "Kvasir/train", "Kvasir/train_labels",
                                ["polyp"], mask_values=[0, 255])

Records are detectron2's semantic-segmentation records (``file_name``, ``sem_seg_file_name``,
``height``, ``width``, ``image_id``) plus ``sem_seg_encoding``: how mask pixel values map to
classes. Label convention everywhere downstream: 0 background, 1..K the ``class_names``, 255
ignored. Masks are single-channel images (8/16-bit PNG, palette PNG, TIFF) of the image's size;
each pixel value must be one of ``mask_values`` (or ``ignore_value``).
"""
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from .image_io import read_image

__all__ = ["IGNORE_LABEL", "load_image_mask_folders", "read_label_mask",
           "register_image_mask_folders"]

logger = logging.getLogger(__name__)

IGNORE_LABEL = 255  # label of pixels left out of losses and metrics
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
_LISTED = 5  # file names quoted per error


def read_label_mask(path: str, mask_values: Sequence[int],
                    ignore_value: Optional[int] = None) -> np.ndarray:
    """Read a mask file as class labels.

    Args:
        path: single-channel mask image.
        mask_values: pixel value of each class, background first (class i has value
            ``mask_values[i]``).
        ignore_value: pixel value of ignored pixels (labelled 255), or None.
    Returns:
        uint8 [H, W]: 0..len(mask_values)-1, and 255 where the pixel is ``ignore_value``.
    Raises:
        ValueError: a multi-channel mask, or pixel values outside ``mask_values``.
    """
    with Image.open(path) as image:
        if image.mode not in ("1", "L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ValueError(f"Mask '{path}' has mode {image.mode}; masks must be single-channel "
                             "(grayscale or palette) images of class values.")
        raw = np.asarray(image).astype(np.int64)
    labels = np.full(raw.shape, 255, dtype=np.uint8)
    known = np.zeros(raw.shape, dtype=bool)
    for label, value in enumerate(mask_values):
        hit = raw == value
        labels[hit] = label
        known |= hit
    if ignore_value is not None:
        known |= raw == ignore_value
    if not known.all():
        bad = np.unique(raw[~known])[:10].tolist()
        raise ValueError(
            f"Mask '{path}' has pixel values {bad} that are neither a class value (mask_values "
            f"{list(mask_values)}, background first) nor ignore_value {ignore_value}; register "
            "the dataset with the mask_values its masks use.")
    return labels


def _image_size(path: str) -> tuple:
    """(height, width) of an image file, from its header where PIL can read it."""
    if path.lower().endswith(".dcm"):
        return read_image(path, format="L").shape[:2]
    with Image.open(path) as image:
        return image.height, image.width


def load_image_mask_folders(image_dir: str, mask_dir: str, mask_values: Sequence[int],
                            ignore_value: Optional[int] = None) -> List[Dict[str, Any]]:
    """Pair every image of ``image_dir`` with the mask of the same filename in ``mask_dir``.

    A mask may also have the image's stem with ``.png`` (for JPEG/DICOM images). Masks without
    an image are ignored (logged).

    Returns:
        detectron2 records sorted by filename.
    Raises:
        FileNotFoundError: a folder is missing or holds no image, or images lack masks.
        ValueError: an image and its mask differ in size.
    """
    for kind, folder in (("image", image_dir), ("mask", mask_dir)):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"The {kind} folder '{folder}' does not exist.")
    names = sorted(n for n in os.listdir(image_dir) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f"No image ({', '.join(IMAGE_EXTENSIONS)}) in '{image_dir}'.")
    records, missing, mismatched = [], [], []
    for name in names:
        candidates = [name, os.path.splitext(name)[0] + ".png"]
        mask = next((c for c in candidates if os.path.isfile(os.path.join(mask_dir, c))), None)
        if mask is None:
            missing.append(name)
            continue
        image_path, mask_path = os.path.join(image_dir, name), os.path.join(mask_dir, mask)
        size, mask_size = _image_size(image_path), _image_size(mask_path)
        if size != mask_size:
            mismatched.append(f"{name} (image {size[0]}x{size[1]}, "
                              f"mask {mask_size[0]}x{mask_size[1]})")
            continue
        records.append({
            "file_name": os.path.abspath(image_path),
            "sem_seg_file_name": os.path.abspath(mask_path),
            "height": size[0],
            "width": size[1],
            "image_id": os.path.splitext(name)[0],
            "sem_seg_encoding": {"mask_values": list(mask_values), "ignore_value": ignore_value},
        })
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(names)} images in '{image_dir}' have no mask of the same "
            f"filename in '{mask_dir}', e.g. {missing[:_LISTED]}. Add the masks or remove those "
            "images.")
    if mismatched:
        raise ValueError(
            f"{len(mismatched)} images in '{image_dir}' differ in size from their mask in "
            f"'{mask_dir}': {mismatched[:_LISTED]}. Masks must have the image's height x width.")
    extra = len(os.listdir(mask_dir)) - len(records)
    if extra > 0:
        logger.info("%d files in '%s' match no image and are not used.", extra, mask_dir)
    return records


def register_image_mask_folders(
    name: str,
    image_dir: str,
    mask_dir: str,
    class_names: Sequence[str],
    *,
    mask_values: Optional[Sequence[int]] = None,
    ignore_value: Optional[int] = None,
    prepare: Optional[Callable[[], Any]] = None,
    **metadata: Any,
) -> None:
    """Register a semantic segmentation dataset (lazily; folders are read when it is loaded).

    Args:
        name: dataset name for ``DATASETS.TRAIN`` / ``TEST``.
        image_dir: folder of images.
        mask_dir: folder of masks with the images' filenames.
        class_names: the K foreground classes (background is implicit, label 0).
        mask_values: pixel value of background and of each class, K + 1 values; default
            0, 1, ..., K. Binary 0/255 masks: ``[0, 255]``.
        ignore_value: pixel value of unlabeled pixels (excluded from loss and metrics).
        prepare: called with no arguments before each load (e.g. writes the masks once).
        **metadata: extra ``MetadataCatalog`` entries (``evaluator_type`` defaults to
            "sem_seg_dice").
    Raises:
        ValueError: bad ``mask_values``, or ``name`` is already registered.
    """
    mask_values = list(range(len(class_names) + 1)) if mask_values is None else list(mask_values)
    if len(mask_values) != len(class_names) + 1 or len(set(mask_values)) != len(mask_values):
        raise ValueError(f"Dataset '{name}': mask_values {mask_values} must be "
                         f"{len(class_names) + 1} distinct pixel values (background, then "
                         f"{list(class_names)}).")
    if ignore_value is not None and ignore_value in mask_values:
        raise ValueError(f"Dataset '{name}': ignore_value {ignore_value} is also a class value.")
    if name in DatasetCatalog:
        raise ValueError(f"Dataset '{name}' is already registered; pick another name or call "
                         "vertspine.data.unregister_dataset first.")
    image_dir, mask_dir = os.path.abspath(image_dir), os.path.abspath(mask_dir)

    def load() -> List[Dict[str, Any]]:
        if prepare is not None:
            prepare()
        return load_image_mask_folders(image_dir, mask_dir, mask_values, ignore_value)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**{
        "image_root": image_dir,
        "sem_seg_root": mask_dir,
        "stuff_classes": ["background", *class_names],
        # foreground classes: what check_num_classes compares MODEL.SEGMENTOR.NUM_CLASSES with
        "thing_classes": list(class_names),
        "mask_values": mask_values,
        "ignore_label": IGNORE_LABEL,
        "evaluator_type": "sem_seg_dice",
        **metadata,
    })
