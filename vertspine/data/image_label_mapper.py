"""The dataset mapper of image-level classification: an image and its class label.

Registered in :data:`MAPPER_REGISTRY` as ``INPUT.DATASET_MAPPER "ImageLabelDatasetMapper"``.
Reading: :func:`vertspine.data.read_image` (PNG/JPEG 8/16-bit, DICOM) in ``INPUT.FORMAT``.
Augmentation: detectron2's default resize/flip (:func:`build_resize_flip`):
``ResizeShortestEdge(INPUT.MIN_SIZE_*, INPUT.MAX_SIZE_*)`` (aspect ratio kept); in training only
a horizontal flip when ``INPUT.RANDOM_FLIP`` is "horizontal" (vertical with "vertical"); then,
when ``INPUT.SQUARE_SIZE`` > 0, :class:`FixedSquare` (deterministic). Test-time mapping has no
randomness: a single ``MIN_SIZE_TEST`` resize and the square.

The label of a record is its ``label`` if present, else its ``abnormal`` field (VinDr-SpineXR
converter), else 1 when it has any annotation and 0 when it has none (a detection dataset read
as abnormal-vs-normal).
"""
import copy
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .image_io import read_image
from .mapper_registry import MAPPER_REGISTRY
from .transforms.resize_flip import build_resize_flip, build_test_resize

__all__ = ["FixedSquare", "ImageLabelDatasetMapper", "record_label"]

_SQUARE_MODES = ("pad", "crop")


def record_label(record: Dict[str, Any]) -> int:
    """The class label of a dataset record (see the module docstring for the order)."""
    for key in ("label", "abnormal"):
        if key in record and record[key] is not None:
            return int(record[key])
    return int(bool(record.get("annotations")))


class FixedSquare(T.Augmentation):
    """Fit an image into a ``size`` x ``size`` square, keeping its aspect ratio.

    "pad": shrink (never grow) so the long side is at most ``size``, then pad equally on both
    sides with ``pad_value``. "crop": grow (never shrink) so the short side is at least ``size``,
    then crop the centre. A ``size`` x ``size`` image passes unchanged.
    """

    def __init__(self, size: int, mode: str = "pad", pad_value: float = 0.0):
        super().__init__()
        if size <= 0:
            raise ValueError(f"INPUT.SQUARE_SIZE is {size}; use a positive size (or 0 = off).")
        if mode not in _SQUARE_MODES:
            raise ValueError(f"INPUT.SQUARE_MODE is {mode!r}; use one of {_SQUARE_MODES}.")
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        size = self.size
        scale = min(1.0, size / max(h, w)) if self.mode == "pad" else max(1.0, size / min(h, w))
        new_h, new_w = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
        if self.mode == "crop":
            new_h, new_w = max(new_h, size), max(new_w, size)
        transforms: List[T.Transform] = []
        if (new_h, new_w) != (h, w):
            transforms.append(T.ResizeTransform(h, w, new_h, new_w))
        if self.mode == "pad":
            top, left = (size - new_h) // 2, (size - new_w) // 2
            transforms.append(T.PadTransform(left, top, size - new_w - left, size - new_h - top,
                                             orig_w=new_w, orig_h=new_h,
                                             pad_value=self.pad_value))
        else:
            top, left = (new_h - size) // 2, (new_w - size) // 2
            transforms.append(T.CropTransform(left, top, size, size, orig_w=new_w, orig_h=new_h))
        return T.TransformList(transforms)


@MAPPER_REGISTRY.register()
class ImageLabelDatasetMapper:
    """Map a record to ``{"image": uint8-valued tensor [C, H, W], "label": int, ...}``.

    The output keeps ``file_name``, ``image_id``, ``height`` and ``width`` of the record (the
    evaluator writes them with each prediction) and drops ``annotations``.
    """

    @configurable
    def __init__(self, is_train: bool, *, augmentations: List, image_format: str,
                 square: Optional[FixedSquare] = None):
        """
        Args:
            is_train: training mapping (random augmentations allowed) or test mapping.
            augmentations: detectron2 augmentations applied first (resize, flip).
            image_format: ``INPUT.FORMAT`` ("BGR", "RGB" or "L").
            square: applied after ``augmentations`` when given.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(list(augmentations) + ([square] if square else []))
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, augmentations: Optional[List] = None):
        if augmentations is None:
            augmentations = build_resize_flip(cfg, is_train)
        square = None
        if cfg.INPUT.SQUARE_SIZE > 0:
            square = FixedSquare(cfg.INPUT.SQUARE_SIZE, cfg.INPUT.SQUARE_MODE,
                                 cfg.INPUT.SQUARE_PAD_VALUE)
        return {"is_train": is_train, "augmentations": augmentations,
                "image_format": cfg.INPUT.FORMAT, "square": square}

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "ImageLabelDatasetMapper":
        """The test-size resize and the square, for validation losses (the label is always
        kept)."""
        return cls(cfg, is_train=True, augmentations=[build_test_resize(cfg)])

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """
        Args:
            dataset_dict: a record with ``file_name`` (not modified).
        Returns:
            The record without ``annotations``, with ``image`` (tensor [C, H, W] after
            augmentation, ``INPUT.FORMAT`` channel order, 0-255) and ``label`` (int).
        """
        record = copy.deepcopy(dataset_dict)
        image = read_image(record["file_name"], format=self.image_format)
        utils.check_image_size(record, image)
        return self.map_image(record, image)

    def map_image(self, record: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        """Augment an already-read image (uint8 [H, W, C]) and build the output from ``record``
        (which the caller owns; it is modified)."""
        record["label"] = record_label(record)
        record.pop("annotations", None)
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        record["image"] = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        return record
