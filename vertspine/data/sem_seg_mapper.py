"""Dataset mapper for semantic segmentation records: ``INPUT.DATASET_MAPPER "SemSegDatasetMapper"``.

Preprocessing of the image is deterministic and the same in training and evaluation: it is read
with :func:`vertspine.data.read_image` (``INPUT.FORMAT``) and resized keeping its aspect ratio so
its short side is ``INPUT.MIN_SIZE_TEST`` (long side at most ``INPUT.MAX_SIZE_TEST``; bilinear,
:func:`build_test_resize`). Pixel normalisation (e.g. ImageNet mean/std on 0-255 RGB) is the
model's (``MODEL.PIXEL_MEAN``/``PIXEL_STD``). The only random step is the optional training flip
``INPUT.RANDOM_FLIP`` (:func:`build_flip`); evaluation has none.

Ground truth: in training ``sem_seg`` is resized with the image (nearest), the frame of the
model's logits; at test time it stays at the original mask resolution (``height`` x ``width``),
the frame the model returns its prediction in, so evaluators take it from the inputs.
"""
import copy
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T

from .image_io import read_image
from .image_mask_folders import read_label_mask
from .mapper_registry import MAPPER_REGISTRY
from .transforms.resize_flip import build_flip, build_test_resize

__all__ = ["SemSegDatasetMapper"]


@MAPPER_REGISTRY.register()
class SemSegDatasetMapper:
    """Image + label mask -> ``image`` [C, H', W'] and ``sem_seg`` (training and test).

    Records need ``file_name``, ``sem_seg_file_name`` and ``sem_seg_encoding`` (as written by
    :func:`register_image_mask_folders`); both stay in the output.
    """

    @configurable
    def __init__(self, is_train: bool = True, *, augmentations: List, image_format: str):
        """
        Args:
            is_train: training (labels resized with the image) or test mapping (labels at the
                original resolution).
            augmentations: detectron2 augmentations applied to the image (and, in training, the
                mask).
            image_format: ``INPUT.FORMAT`` ("RGB", "BGR" or "L").
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, augmentations: Optional[List] = None):
        if augmentations is None:
            augmentations = [build_test_resize(cfg)] + (build_flip(cfg) if is_train else [])
        return {"is_train": is_train, "augmentations": augmentations,
                "image_format": cfg.INPUT.FORMAT}

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "SemSegDatasetMapper":
        """The test-time resize without flip, ``sem_seg`` resized with the image as the
        training losses take it: the mapping of validation losses."""
        return cls(cfg, is_train=True, augmentations=[build_test_resize(cfg)])

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """
        Args:
            dataset_dict: a semantic segmentation record (not modified).
        Returns:
            a copy with ``image`` (uint8-valued tensor [C, H', W']), ``sem_seg`` (int64, 0..K,
            255 ignored; [H', W'] in training, [height, width] at test time) and the original
            ``height``/``width``.
        Raises:
            KeyError: the record has no mask; ValueError: mask and image sizes differ.
        """
        record = copy.deepcopy(dataset_dict)
        for key in ("sem_seg_file_name", "sem_seg_encoding"):
            if key not in record:
                raise KeyError(f"Record of '{record.get('file_name')}' has no '{key}': "
                               "SemSegDatasetMapper needs datasets registered with "
                               "register_image_mask_folders.")
        image = read_image(record["file_name"], format=self.image_format)
        encoding = record["sem_seg_encoding"]
        labels = read_label_mask(record["sem_seg_file_name"], encoding["mask_values"],
                                 encoding["ignore_value"])
        if labels.shape != image.shape[:2]:
            raise ValueError(f"Mask '{record['sem_seg_file_name']}' is {labels.shape}, image "
                             f"'{record['file_name']}' is {image.shape[:2]}; they must match.")
        record.setdefault("height", image.shape[0])
        record.setdefault("width", image.shape[1])
        aug_input = T.AugInput(image, sem_seg=labels if self.is_train else None)
        self.augmentations(aug_input)
        record["image"] = torch.as_tensor(np.ascontiguousarray(aug_input.image.transpose(2, 0, 1)))
        sem_seg = aug_input.sem_seg if self.is_train else labels
        record["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        return record
