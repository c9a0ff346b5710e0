"""The dataset mapper of box-prompted segmentation: ``INPUT.DATASET_MAPPER "PromptSegMapper"``.

A record (:mod:`.datasets`) names an npz case and, for 3D, a slice. The mapper reads the image
and its labels, takes one box per labelled object from its mask (tight, inclusive pixel indices)
and puts image, boxes and masks through :func:`.preprocess.preprocess_image` and friends, so the
model sees exactly what inference gives it. Training adds, in the S x S frame and inside the
resized image (the padding stays at the bottom/right, unlike the originals, which flipped the
padded image): a horizontal and a vertical flip (each with ``FLIP_PROB``), a random subset of
at most ``BOXES_PER_IMAGE`` objects, and box jitter: each side moves outwards by
``randint(0, BOX_JITTER)`` px (inclusive, independently per side), clipped to the image.
3D training slices can take an object's box from its mask on an adjacent slice
(``NEIGHBOUR_SLICE_BOX_PROB``): 3D inference prompts each slice with the box of the previous
slice's mask (:mod:`vertspine.modeling.prompt_seg.propagation`), so the model learns to follow an
object that moved or changed size since that slice. Such an object may also get that slice's
mask as a mask prompt (``MASK_PROMPT_PROB``; the S x S frame, dilated or eroded by up to
``MASK_PROMPT_DISTORT`` px, flipped with the image), as propagation with
``MODEL.PROMPT_SEG.PROPAGATION.MASK_PROMPT`` gives each slice the previous slice's mask.
Randomness comes from ``np.random`` (seeded per data-loader worker by detectron2).
"""
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from scipy.ndimage import binary_dilation, binary_erosion

from ..mapper_registry import MAPPER_REGISTRY
from .npz_format import read_prompt_seg_npz
from .preprocess import mask_boxes, preprocess_image, resize_labels, scale_boxes

__all__ = ["PromptSegMapper"]


@MAPPER_REGISTRY.register()
class PromptSegMapper:
    """Record -> the model's input dict for one image (or one slice of a volume).

    Output: ``image`` float32 [3, S, S] (preprocessed); ``boxes`` float32 [B, 4] XYXY in the
    S x S frame (inclusive pixel indices, float); ``gt_masks`` uint8 [B, S, S] 0/1 (padding 0);
    ``gt_labels`` int64 [B] (each box's label value in ``gts``); ``height``, ``width`` (original
    size); ``resized_size`` (h, w) before padding; ``file_name``, ``image_id``, ``modality``; 3D
    also ``slice_index`` and ``spacing`` (mm, array order D, H, W); 3D training with
    ``mask_prompt_prob`` also ``mask_prompts`` uint8 [B, S, S] 0/1 and ``has_mask_prompt`` bool
    [B] (rows without a prompt are zeros). Test mode: every object of the image in increasing
    label order, no augmentation.
    """

    @configurable
    def __init__(self, is_train: bool = True, *, image_size: int, boxes_per_image: int,
                 box_jitter: int, flip_prob: float, neighbour_slice_box_prob: float = 0.0,
                 mask_prompt_prob: float = 0.0, mask_prompt_distort: int = 0,
                 ct_window: Optional[Sequence[float]] = None,
                 ct_window_modalities: Sequence[str] = ("CT",)):
        """
        Args:
            is_train: augment and subsample (training) or keep everything (test).
            image_size: S, the model's input side in px.
            boxes_per_image: training: at most this many objects per image (0 = all).
            box_jitter: training: the most px a box side moves outwards.
            flip_prob: training: probability of each flip (horizontal, vertical).
            neighbour_slice_box_prob: 3D training: probability that an object's box comes
                from its mask on slice z - 1 or z + 1 (drawn among those holding it).
            mask_prompt_prob: 3D training: probability that such an object also gets that
                slice's mask as a mask prompt.
            mask_prompt_distort: the most px a mask prompt is dilated or eroded.
            ct_window: (level, width) HU applied to ``ct_window_modalities``, or None.
            ct_window_modalities: modalities whose images are windowed.
        Raises:
            ValueError: a setting out of range, naming its ``INPUT.PROMPT_SEG`` key.
        """
        checks = (("IMAGE_SIZE", image_size, image_size >= 1),
                  ("BOXES_PER_IMAGE", boxes_per_image, boxes_per_image >= 0),
                  ("BOX_JITTER", box_jitter, box_jitter >= 0),
                  ("FLIP_PROB", flip_prob, 0.0 <= flip_prob <= 1.0),
                  ("NEIGHBOUR_SLICE_BOX_PROB", neighbour_slice_box_prob,
                   0.0 <= neighbour_slice_box_prob <= 1.0),
                  ("MASK_PROMPT_PROB", mask_prompt_prob, 0.0 <= mask_prompt_prob <= 1.0),
                  ("MASK_PROMPT_DISTORT", mask_prompt_distort, mask_prompt_distort >= 0),
                  ("CT_WINDOW", ct_window,
                   not ct_window or (len(ct_window) == 2 and ct_window[1] > 0)))
        for key, value, ok in checks:
            if not ok:
                raise ValueError(f"INPUT.PROMPT_SEG.{key} = {value!r} is out of range (sizes and "
                                 "counts >= 0, probability in [0, 1], window (level, width > 0)).")
        self.is_train = is_train
        self.image_size = int(image_size)
        self.boxes_per_image = int(boxes_per_image)
        self.box_jitter = int(box_jitter)
        self.flip_prob = float(flip_prob)
        self.neighbour_slice_box_prob = float(neighbour_slice_box_prob)
        self.mask_prompt_prob = float(mask_prompt_prob)
        self.mask_prompt_distort = int(mask_prompt_distort)
        self.ct_window = tuple(ct_window) if ct_window else None
        self.ct_window_modalities = tuple(ct_window_modalities)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True) -> Dict[str, Any]:
        node = cfg.INPUT.PROMPT_SEG
        return {
            "is_train": is_train,
            "image_size": node.IMAGE_SIZE,
            "boxes_per_image": node.BOXES_PER_IMAGE,
            "box_jitter": node.BOX_JITTER,
            "flip_prob": node.FLIP_PROB,
            "neighbour_slice_box_prob": node.NEIGHBOUR_SLICE_BOX_PROB,
            "mask_prompt_prob": node.MASK_PROMPT_PROB,
            "mask_prompt_distort": node.MASK_PROMPT_DISTORT,
            "ct_window": tuple(node.CT_WINDOW) or None,
            "ct_window_modalities": tuple(node.CT_WINDOW_MODALITIES),
        }

    @classmethod
    def evaluation_with_ground_truth(cls, cfg) -> "PromptSegMapper":
        """The test mapping: it keeps every object's box and mask."""
        return cls(cfg, is_train=False)

    def _slice(self, record: Dict[str, Any], imgs: np.ndarray, gts: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray, Optional[int]]:
        """The 2D image and labels of a record (a 3D record's slice; training may draw it)."""
        if gts.ndim == 2:
            return imgs, gts, None
        index = record.get("slice_index")
        if index is None:
            if not (self.is_train and record.get("labelled_slices")):
                raise KeyError(f"3D record {record['file_name']} has no 'slice_index' (test "
                               "records need one; 'labelled_slices' is for training).")
            index = int(np.random.choice(record["labelled_slices"]))
        return imgs[index], gts[index], int(index)

    def __call__(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """
        Args:
            record: a prompt-seg record (not modified).
        Returns:
            the input dict (see the class docstring).
        """
        case = read_prompt_seg_npz(record["file_name"], require_gts=True,
                                   spacing_order=record.get("spacing_order", "xyz"))
        image, labels, index = self._slice(record, case.imgs, case.gts)
        height, width = labels.shape
        values = np.unique(labels)
        values = values[values > 0]
        if self.is_train and 0 < self.boxes_per_image < len(values):
            values = np.sort(np.random.choice(values, self.boxes_per_image, replace=False))
        window = self.ct_window if record.get("modality") in self.ct_window_modalities else None
        tensor, (new_h, new_w) = preprocess_image(image, self.image_size, window)
        boxes = mask_boxes(labels, values)
        sources = np.full(len(values), -1)  # the slice each box came from, -1: its own
        if self.is_train and index is not None and self.neighbour_slice_box_prob > 0:
            boxes, sources = self._neighbour_slice_boxes(case.gts, index, values, boxes)
        boxes = scale_boxes(boxes, height, width, self.image_size)
        masks = (resize_labels(labels, self.image_size)[None] == values[:, None, None])
        masks = masks.astype(np.uint8)
        prompts = None
        if self.is_train and index is not None and self.mask_prompt_prob > 0:
            prompts, has_prompt = self._mask_prompts(case.gts, values, sources)
        if self.is_train:
            keep = masks.any(axis=(1, 2))  # objects lost by the nearest-neighbour downsizing
            values, boxes, masks = values[keep], boxes[keep], masks[keep]
            if prompts is not None:  # flipped with the GT masks: one stack through _augment
                prompts, has_prompt = prompts[keep], has_prompt[keep]
                masks = np.concatenate([masks, prompts])
            tensor, boxes, masks = self._augment(tensor, boxes, masks, new_h, new_w)
            if prompts is not None:
                masks, prompts = np.split(masks, 2)
        out = {
            "image": torch.from_numpy(np.ascontiguousarray(tensor)),
            "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "gt_masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "gt_labels": torch.as_tensor(values.astype(np.int64)),
            "height": height, "width": width, "resized_size": (new_h, new_w),
            "file_name": record["file_name"], "image_id": record["image_id"],
            "modality": record.get("modality"),
        }
        if index is not None:
            out.update(slice_index=index, spacing=tuple(case.spacing))
        if prompts is not None:
            out.update(mask_prompts=torch.from_numpy(np.ascontiguousarray(prompts)),
                       has_mask_prompt=torch.from_numpy(has_prompt))
        return out

    def _neighbour_slice_boxes(self, gts: np.ndarray, index: int, values: np.ndarray,
                               boxes: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Each object's box, replaced with probability ``neighbour_slice_box_prob`` by its tight
        box on slice ``index - 1`` or ``index + 1`` (drawn among those holding the object).

        Args:
            gts: [D, H, W] labels; index: the record's slice; values: [B] object labels;
            boxes: [B, 4] their tight XYXY boxes on ``index`` (original pixel frame).
        Returns:
            [B, 4] boxes in the same frame (a new array) and [B] int, the slice each box was
            taken from (-1: its own).
        """
        boxes, sources = boxes.copy(), np.full(len(values), -1)
        for i, value in enumerate(values):
            if np.random.rand() >= self.neighbour_slice_box_prob:
                continue
            neighbours = [z for z in (index - 1, index + 1)
                          if 0 <= z < len(gts) and (gts[z] == value).any()]
            if neighbours:
                sources[i] = int(np.random.choice(neighbours))
                boxes[i] = mask_boxes(gts[sources[i]], [value])[0]
        return boxes, sources

    def _mask_prompts(self, gts: np.ndarray, values: np.ndarray,
                      sources: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Mask prompts of the objects whose box came from an adjacent slice (each with
        probability ``mask_prompt_prob``): that slice's mask in the S x S frame, dilated or
        eroded by ``randint(0, mask_prompt_distort)`` px (an erosion that empties it is undone).

        Args:
            gts: [D, H, W] labels; values: [B] object labels; sources: [B] the slice each box
                came from (-1: its own slice, no prompt).
        Returns:
            uint8 [B, S, S] 0/1 prompts (zeros where none) and bool [B] flags.
        """
        side = self.image_size
        prompts = np.zeros((len(values), side, side), np.uint8)
        flags = np.zeros(len(values), bool)
        for i, (value, source) in enumerate(zip(values, sources)):
            if source < 0 or np.random.rand() >= self.mask_prompt_prob:
                continue
            mask = resize_labels(gts[source], side) == value
            steps = np.random.randint(0, self.mask_prompt_distort + 1)
            if steps:
                change = binary_dilation if np.random.rand() < 0.5 else binary_erosion
                changed = change(mask, iterations=steps)
                mask = changed if changed.any() else mask
            prompts[i], flags[i] = mask, mask.any()
        return prompts, flags

    def _augment(self, image: np.ndarray, boxes: np.ndarray, masks: np.ndarray, new_h: int,
                 new_w: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flips and box jitter inside the resized h x w region (see the module docstring).

        Args:
            image: [3, S, S]; boxes: [B, 4] XYXY; masks: [B, S, S]; new_h, new_w: resized size.
        """
        image, masks, boxes = image.copy(), masks.copy(), boxes.copy()
        for axis, extent, coords in ((2, new_w, [0, 2]), (1, new_h, [1, 3])):
            if np.random.rand() < self.flip_prob:
                region = (slice(None), slice(0, new_h), slice(0, new_w))
                image[region] = np.flip(image[region], axis=axis)
                masks[region] = np.flip(masks[region], axis=axis)
                boxes[:, coords] = (extent - 1) - boxes[:, coords[::-1]]
        if self.box_jitter:
            shift = np.random.randint(0, self.box_jitter + 1, size=boxes.shape).astype(np.float64)
            boxes = boxes + shift * np.array([-1, -1, 1, 1])
        return image, np.clip(boxes, 0, [new_w - 1, new_h - 1, new_w - 1, new_h - 1]), masks
