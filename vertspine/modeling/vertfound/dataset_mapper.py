"""``VertFoundDatasetMapper``: images plus ground-truth boxes, levels and annotation indices,
in training and at test time (VertFound classifies given boxes, so it needs them to infer).

Differences from the released mapper (spec section 2): boxes are kept at test time; the image is
read with :func:`vertspine.data.read_image`; boxes go through the same transforms as the image;
and with an embedding cache geometric augmentations are refused, so cached tokens always
describe the image and boxes the model receives.
"""
import copy
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode, Boxes, Instances

from vertspine.data import MAPPER_REGISTRY, read_image
from vertspine.data.transforms import build_resize_flip, build_test_resize

__all__ = ["CollimationTransform", "RandomCollimation", "VertFoundDatasetMapper",
           "build_vertfound_augmentations"]

_PHOTOMETRIC = (T.RandomBrightness, T.RandomContrast, T.RandomSaturation, T.RandomLighting)


class CollimationTransform(T.Transform):
    """Rows above ``top`` and from ``bottom`` on set to ``value``; points (and so boxes) clipped
    to the exposed rows. Geometry and scale are unchanged."""

    def __init__(self, top: int, bottom: int, value: int = 0):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        img = img.copy()
        img[: self.top] = self.value
        img[self.bottom:] = self.value
        return img

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        coords = np.array(coords, dtype=np.float64, copy=True)
        coords[:, 1] = coords[:, 1].clip(self.top, self.bottom)
        return coords

    def inverse(self) -> T.Transform:
        return T.NoOpTransform()  # blanked pixels cannot be restored


class RandomCollimation(T.Augmentation):
    """Blank bands at the top and bottom of a radiograph, together up to ``max_fraction`` of its
    height (split at random between the two), like an X-ray collimator."""

    def __init__(self, max_fraction: float, value: int = 0):
        super().__init__()
        self._init(locals())

    def get_transform(self, image: np.ndarray) -> T.Transform:
        height = image.shape[0]
        cut = self._rand_range(0.0, self.max_fraction) * height
        top = int(cut * self._rand_range())
        return CollimationTransform(top, height - int(cut) + top, self.value)


def build_vertfound_augmentations(cfg, is_train: bool) -> List[T.Augmentation]:
    """Resize (INPUT.MIN_SIZE_*; a size of 0 leaves the image as it is: the model resizes for SAM
    and CLIP itself), and in training a random crop, zoom and collimation (MODEL.VERTFOUND.AUG),
    RandomFlip (INPUT.RANDOM_FLIP, horizontal: vertical is refused by the mapper) and
    brightness/contrast (MODEL.VERTFOUND.AUG). Resize and flip come from
    :mod:`vertspine.data.transforms.resize_flip`."""
    if not is_train:
        return [build_test_resize(cfg)]
    augs = build_resize_flip(cfg, is_train=True)
    aug = cfg.MODEL.VERTFOUND.AUG
    if tuple(aug.BRIGHTNESS) != (1.0, 1.0):
        augs.append(T.RandomBrightness(*aug.BRIGHTNESS))
    if tuple(aug.CONTRAST) != (1.0, 1.0):
        augs.append(T.RandomContrast(*aug.CONTRAST))
    if aug.COLLIMATE > 0:
        augs.insert(0, RandomCollimation(aug.COLLIMATE))
    if tuple(aug.ZOOM) != (1.0, 1.0):
        augs.insert(0, T.RandomExtent(tuple(aug.ZOOM), (0.1, 0.1)))
    if tuple(aug.CROP_MIN) != (1.0, 1.0):
        augs.insert(0, T.RandomCrop("relative_range", tuple(aug.CROP_MIN)))
    return augs


def _is_geometric(aug: T.Augmentation) -> bool:
    """Whether ``aug`` may move pixels (a resize to size 0 never does)."""
    if isinstance(aug, _PHOTOMETRIC):
        return False
    if isinstance(aug, T.ResizeShortestEdge):
        return any(size != 0 for size in aug.short_edge_length)
    return True


@MAPPER_REGISTRY.register()
class VertFoundDatasetMapper:
    """Map a detectron2 record to VertFound's input, in training and at test time.

    Output dict: the record's ``file_name``, ``image_id``, ``height``, ``width`` (original size),
    ``image`` (uint8-valued tensor [C, H, W] after augmentation, ``INPUT.FORMAT`` order) and
    ``instances`` with ``gt_boxes`` (XYXY pixels of the augmented image), ``gt_classes``
    (contiguous levels), ``gt_indices`` (int64 index into the record's ``annotations``) and
    ``gt_ann_ids`` (the annotation's json id when the record keeps it, else its index).
    Crowd annotations are skipped.
    """

    @configurable
    def __init__(self, *, is_train: bool, augmentations: List[T.Augmentation],
                 image_format: str = "RGB", min_visible: float = 0.0):
        """
        Args:
            is_train: training mapping (kept for detectron2's mapper interface).
            augmentations: applied to the image and its boxes.
            image_format: ``INPUT.FORMAT``.
            min_visible: boxes keeping less than this fraction of their area after the
                augmentations (a crop) are dropped.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.min_visible = min_visible

    @classmethod
    def from_config(cls, cfg, is_train: bool = True,
                    augmentations: Optional[List[T.Augmentation]] = None) -> Dict[str, Any]:
        if is_train and cfg.INPUT.RANDOM_FLIP == "vertical":
            raise ValueError("INPUT.RANDOM_FLIP 'vertical' turns the spine upside down, against "
                             "VertFound's top-to-bottom level order; use 'horizontal' or 'none'.")
        if augmentations is None:
            augmentations = build_vertfound_augmentations(cfg, is_train)
        geometric = [type(a).__name__ for a in augmentations if _is_geometric(a)]
        if is_train and cfg.MODEL.VERTFOUND.CACHE.PATH and geometric:
            raise ValueError(
                f"MODEL.VERTFOUND.CACHE.PATH is set, but training augmentations {geometric} move "
                "pixels, so cached SAM tokens would describe another image. Set INPUT.RANDOM_FLIP "
                "'none' and INPUT.MIN_SIZE_TRAIN (0,) (brightness/contrast are allowed), or "
                "train without the cache (MODEL.VERTFOUND.CACHE.PATH '').")
        return {"is_train": is_train, "augmentations": augmentations,
                "image_format": cfg.INPUT.FORMAT,
                "min_visible": cfg.MODEL.VERTFOUND.AUG.MIN_VISIBLE if is_train else 0.0}

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "VertFoundDatasetMapper":
        """The test-time resize, boxes kept as in training (``AUG.MIN_VISIBLE`` applies): the
        mapping of validation losses."""
        return cls(cfg, is_train=True, augmentations=build_vertfound_augmentations(cfg, False))

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """
        Args:
            dataset_dict: a detectron2 standard record (not modified).
        Returns:
            the mapped dict described in the class doc.
        """
        record = copy.deepcopy(dataset_dict)
        image = read_image(record["file_name"], format=self.image_format)
        utils.check_image_size(record, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        height, width = image.shape[:2]

        annotations = record.pop("annotations", [])
        kept = [i for i, a in enumerate(annotations) if a.get("iscrowd", 0) == 0]
        boxes = np.array([BoxMode.convert(annotations[i]["bbox"], annotations[i]["bbox_mode"],
                                          BoxMode.XYXY_ABS) for i in kept],
                         dtype=np.float64).reshape(-1, 4)
        moved = boxes  # the boxes moved but not clipped (by the image border or a shutter)
        for transform in transforms.transforms:
            if not isinstance(transform, CollimationTransform):
                moved = transform.apply_box(moved)
        boxes = transforms.apply_box(boxes).clip(0, [width, height, width, height])
        if self.min_visible > 0 and len(kept):
            area = lambda b: (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # noqa
            visible = area(boxes) >= self.min_visible * np.maximum(area(moved), 1e-6)
            kept = [i for i, v in zip(kept, visible) if v]
            boxes = boxes[visible]
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
        instances.gt_classes = torch.tensor([annotations[i]["category_id"] for i in kept],
                                            dtype=torch.int64)
        instances.gt_indices = torch.tensor(kept, dtype=torch.int64)
        instances.gt_ann_ids = torch.tensor([annotations[i].get("id", i) for i in kept],
                                            dtype=torch.int64)
        record.pop("sem_seg_file_name", None)
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        record["instances"] = instances
        return record
