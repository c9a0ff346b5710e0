"""detectron2's ``DatasetMapper`` reading images with vertspine's :func:`read_image`.

So DICOM and 16-bit PNG/TIFF work in training and evaluation, in the array convention of
:mod:`vertspine.data.image_io` (uint8 [H, W, C] in ``INPUT.FORMAT`` order).
"""
import copy
from typing import Any, Dict

import numpy as np
import torch
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from .image_io import read_image
from .transforms.autoaugment import build_autoaugment
from .transforms.resize_flip import build_test_resize

__all__ = ["VertspineDatasetMapper"]


class VertspineDatasetMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` (same config, augmentations and outputs) whose image is
    read with :func:`vertspine.data.image_io.read_image`.

    Build it as the parent: ``VertspineDatasetMapper(cfg, is_train=True)`` or with keyword
    arguments. ``INPUT.FORMAT`` must be "BGR", "RGB" or "L". Semantic segmentation label files
    are still read with detectron2's reader: label values must not be rescaled.
    With ``INPUT.AUTOAUGMENT.ENABLED``, training appends the AutoAugment policy
    (:mod:`vertspine.data.transforms.autoaugment`) after detectron2's augmentations; the
    ground-truth boxes are given to the augmentations (``AugInput.boxes``) for that.
    """

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        """detectron2's arguments, plus the AutoAugment policy when enabled in training."""
        ret = super().from_config(cfg, is_train)
        autoaugment = cfg.INPUT.get("AUTOAUGMENT")  # absent from plain detectron2 configs
        if is_train and autoaugment is not None and autoaugment.ENABLED:
            ret["augmentations"] = list(ret["augmentations"]) + [build_autoaugment(cfg)]
        return ret

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "VertspineDatasetMapper":
        """The test-size resize only (no flip, no AutoAugment), with ``instances`` built from
        the annotations as in training: the mapping of validation losses."""
        return cls(cfg, is_train=True, augmentations=[build_test_resize(cfg)])

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        """Map one detectron2 standard record to the model's input.

        Args:
            dataset_dict: a record; ``file_name`` is read, the dict itself is not modified.
        Returns:
            The record with ``image`` (uint8-valued tensor [C, H, W] after augmentation) and,
            in training, ``instances`` (boxes XYXY in the augmented image's pixels).
        """
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], format=self.image_format)
        utils.check_image_size(dataset_dict, image)
        return self.map_image(dataset_dict, image)

    def map_image(self, dataset_dict: Dict[str, Any], image: np.ndarray) -> Dict[str, Any]:
        """Augment an already-read image and its record, and build the model's input.

        This is detectron2 0.6 ``DatasetMapper.__call__`` after its image-reading lines,
        copied unchanged because 0.6 reads the image inline with no method to override.

        Args:
            dataset_dict: a record the caller owns (it is modified).
            image: the record's image, uint8 [H, W, C] in ``self.image_format`` order.
        Returns:
            ``dataset_dict`` with ``image`` and, in training, ``instances``.
        """
        if "sem_seg_file_name" in dataset_dict:
            sem_seg_gt = utils.read_image(dataset_dict.pop("sem_seg_file_name"), "L").squeeze(2)
        else:
            sem_seg_gt = None

        aug_input = T.AugInput(image, boxes=_annotation_boxes(dataset_dict), sem_seg=sem_seg_gt)
        transforms = self.augmentations(aug_input)
        image, sem_seg_gt = aug_input.image, aug_input.sem_seg

        image_shape = image.shape[:2]  # h, w
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg_gt is not None:
            dataset_dict["sem_seg"] = torch.as_tensor(sem_seg_gt.astype("long"))

        if self.proposal_topk is not None:
            utils.transform_proposals(
                dataset_dict, image_shape, transforms, proposal_topk=self.proposal_topk
            )

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            dataset_dict.pop("sem_seg_file_name", None)
            return dataset_dict

        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)

        return dataset_dict


def _annotation_boxes(dataset_dict: Dict[str, Any]):
    """The record's boxes as float [N, 4] XYXY_ABS, or None when it has no annotations key."""
    if "annotations" not in dataset_dict:
        return None
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
             for a in dataset_dict["annotations"]]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
