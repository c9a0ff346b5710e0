"""AutoAugment for object detection (Zoph et al. 2019) as a detectron2 ``Augmentation``.

:class:`AutoAugmentDetection` draws one sub-policy of the chosen policy uniformly, then applies
each of its (operation, probability, magnitude) triples with its probability, in order, as the
TF reference (``tensorflow/tpu`` ``models/official/detection/utils/autoaugment_utils.py``) does.
Policies: ``"v2"`` (15 sub-policies of 3 operations, the one VinDr-SpineXR trained with) and
``"v0"`` (the paper's 5 x 2). Magnitudes 0..10 map to arguments as TF's ``level_to_arg``:
rotate 30 deg x m/10, shear 0.3 x m/10, translate 250 px x m/10 (sign of all three random),
Color/Contrast/Brightness/Sharpness factor 0.1 + 1.8 m/10, Solarize threshold 256 m/10,
SolarizeAdd +110 m/10 below 128, Cutout half-side 100 px x m/10, BBox_Cutout half-sides
0.75 m/10 of half the box, TranslateY_Only_BBoxes 120 px x m/10 (each box with prob/3).

Differences from TF, each to fit radiographs of any size:

- **Pixel constants scale with the image**: the 250/100/120 px above are for COCO images, on
  which the policies were searched at their stored size (longest side 640 px). Here every such
  length is multiplied by ``max(H, W) / reference_size`` (``reference_size`` = 640 by
  default, ``INPUT.AUTOAUGMENT.REFERENCE_SIZE``), H, W being the size of the image the
  augmentation sees (after ``ResizeShortestEdge`` in the default mapper). The fill value stays
  128, mid-grey of uint8.
- **Shear about the image centre** (TF: about the top-left corner, which shifts the bottom of a
  tall film by up to 0.3 H); the box rule is unchanged.
- Geometric warps interpolate bilinearly (TF: nearest).
- Images without boxes are fine: BBox_Cutout and TranslateY_Only_BBoxes then do nothing.

Randomness comes from ``numpy.random`` as in detectron2's augmentations, so ``np.random.seed``
fixes the result.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.data.transforms import Augmentation, NoOpTransform, Transform, TransformList

from .autoaugment_ops import (
    AffineTransform,
    AutoContrastTransform,
    BoxContentTranslateTransform,
    BrightnessTransform,
    CutoutTransform,
    EnhanceTransform,
    EqualizeTransform,
    SolarizeAddTransform,
    SolarizeTransform,
    rotation_matrix,
    shear_matrix,
    translation_matrix,
)

__all__ = ["AUTOAUGMENT_OPS", "POLICIES", "AutoAugmentDetection", "build_autoaugment"]

_MAX_LEVEL = 10.0
SubPolicy = Sequence[Tuple[str, float, int]]
POLICIES: Dict[str, List[SubPolicy]] = {
    "v0": [
        [("TranslateX_BBox", 0.6, 4), ("Equalize", 0.8, 10)],
        [("TranslateY_Only_BBoxes", 0.2, 2), ("Cutout", 0.8, 8)],
        [("Sharpness", 0.0, 8), ("ShearX_BBox", 0.4, 0)],
        [("ShearY_BBox", 1.0, 2), ("TranslateY_Only_BBoxes", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("Color", 1.0, 6)],
    ],
    "v2": [
        [("Color", 0.0, 6), ("Cutout", 0.6, 8), ("Sharpness", 0.4, 8)],
        [("Rotate_BBox", 0.4, 8), ("Sharpness", 0.4, 2), ("Rotate_BBox", 0.8, 10)],
        [("TranslateY_BBox", 1.0, 8), ("AutoContrast", 0.8, 2)],
        [("AutoContrast", 0.4, 6), ("ShearX_BBox", 0.8, 8), ("Brightness", 0.0, 10)],
        [("SolarizeAdd", 0.2, 6), ("Contrast", 0.0, 10), ("AutoContrast", 0.6, 0)],
        [("Cutout", 0.2, 0), ("Solarize", 0.8, 8), ("Color", 1.0, 4)],
        [("TranslateY_BBox", 0.0, 4), ("Equalize", 0.6, 8), ("Solarize", 0.0, 10)],
        [("TranslateY_BBox", 0.2, 2), ("ShearY_BBox", 0.8, 8), ("Rotate_BBox", 0.8, 8)],
        [("Cutout", 0.8, 8), ("Brightness", 0.8, 8), ("Cutout", 0.2, 2)],
        [("Color", 0.8, 4), ("TranslateY_BBox", 1.0, 6), ("Rotate_BBox", 0.6, 6)],
        [("Rotate_BBox", 0.6, 10), ("BBox_Cutout", 1.0, 4), ("Cutout", 0.2, 8)],
        [("Rotate_BBox", 0.0, 0), ("Equalize", 0.6, 6), ("ShearY_BBox", 0.6, 8)],
        [("Brightness", 0.8, 8), ("AutoContrast", 0.4, 2), ("Brightness", 0.2, 2)],
        [("TranslateY_BBox", 0.4, 8), ("Solarize", 0.4, 6), ("SolarizeAdd", 0.2, 10)],
        [("Contrast", 1.0, 10), ("SolarizeAdd", 0.2, 8), ("Equalize", 0.2, 4)],
    ],
}


class _Context:
    """What an operation builder needs: image size, pixel scale, fill, current boxes, prob."""

    def __init__(self, height: int, width: int, scale: float, fill: int, boxes: np.ndarray):
        self.height, self.width, self.scale, self.fill = height, width, scale, fill
        self.boxes = boxes  # [N, 4] XYXY after the operations applied so far
        self.prob = 1.0


def _signed(value: float) -> float:
    """``value`` with a random sign (TF's ``_randomly_negate_tensor``)."""
    return value if np.random.rand() < 0.5 else -value


def _factor(level: int) -> float:
    return level / _MAX_LEVEL * 1.8 + 0.1


def _rotate(level, c):
    return AffineTransform(rotation_matrix(c.height, c.width, _signed(level / _MAX_LEVEL * 30.0)),
                           c.height, c.width, c.fill)


def _translate(horizontal: bool):
    def build(level, c):
        shift = _signed(level / _MAX_LEVEL * 250.0 * c.scale)
        matrix = translation_matrix(shift, 0.0) if horizontal else translation_matrix(0.0, shift)
        return AffineTransform(matrix, c.height, c.width, c.fill)
    return build


def _shear(horizontal: bool):
    def build(level, c):
        level = _signed(level / _MAX_LEVEL * 0.3)
        return AffineTransform(shear_matrix(c.height, c.width, level, horizontal),
                               c.height, c.width, c.fill)
    return build


def _cutout(level, c):
    pad = int(level / _MAX_LEVEL * 100.0 * c.scale)
    cy, cx = np.random.randint(c.height), np.random.randint(c.width)
    return CutoutTransform(cx - pad, cy - pad, cx + pad, cy + pad, c.fill) if pad > 0 else None


def _pixel_boxes(c) -> np.ndarray:
    """Current boxes as integer pixel rectangles [x0, y0, x1, y1) inside the image, non-empty."""
    if len(c.boxes) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    boxes = np.asarray(c.boxes, dtype=np.float64).reshape(-1, 4)
    x0 = np.clip(np.floor(boxes[:, 0]), 0, c.width)
    y0 = np.clip(np.floor(boxes[:, 1]), 0, c.height)
    x1 = np.clip(np.ceil(boxes[:, 2]), 0, c.width)
    y1 = np.clip(np.ceil(boxes[:, 3]), 0, c.height)
    rects = np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
    return rects[(rects[:, 2] > rects[:, 0]) & (rects[:, 3] > rects[:, 1])]


def _bbox_cutout(level, c):
    rects = _pixel_boxes(c)
    if len(rects) == 0:
        return None
    x0, y0, x1, y1 = rects[np.random.randint(len(rects))]
    fraction = level / _MAX_LEVEL * 0.75
    pad_h, pad_w = int(fraction * (y1 - y0) / 2), int(fraction * (x1 - x0) / 2)
    cy, cx = np.random.randint(y0, y1), np.random.randint(x0, x1)
    return CutoutTransform(cx - pad_w, cy - pad_h, cx + pad_w, cy + pad_h, c.fill)


def _translate_y_only_bboxes(level, c):
    shift = int(round(_signed(level / _MAX_LEVEL * 120.0 * c.scale)))
    rects = _pixel_boxes(c)
    chosen = [tuple(int(v) for v in r) for r in rects if np.random.rand() < c.prob / 3.0]
    return BoxContentTranslateTransform(chosen, shift, c.fill) if chosen and shift else None


# name -> (builder(level, context) -> Transform or None, handles its probability per box)
AUTOAUGMENT_OPS: Dict[str, Tuple[Callable[[int, _Context], Optional[Transform]], bool]] = {
    "Rotate_BBox": (_rotate, False),
    "TranslateX_BBox": (_translate(True), False),
    "TranslateY_BBox": (_translate(False), False),
    "ShearX_BBox": (_shear(True), False),
    "ShearY_BBox": (_shear(False), False),
    "Equalize": (lambda level, c: EqualizeTransform(), False),
    "AutoContrast": (lambda level, c: AutoContrastTransform(), False),
    "Color": (lambda level, c: EnhanceTransform("Color", _factor(level)), False),
    "Contrast": (lambda level, c: EnhanceTransform("Contrast", _factor(level)), False),
    "Sharpness": (lambda level, c: EnhanceTransform("Sharpness", _factor(level)), False),
    "Brightness": (lambda level, c: BrightnessTransform(_factor(level)), False),
    "Solarize": (lambda level, c: SolarizeTransform(int(level / _MAX_LEVEL * 256)), False),
    "SolarizeAdd": (lambda level, c: SolarizeAddTransform(int(level / _MAX_LEVEL * 110)), False),
    "Cutout": (_cutout, False),
    "BBox_Cutout": (_bbox_cutout, False),
    "TranslateY_Only_BBoxes": (_translate_y_only_bboxes, True),
}


class AutoAugmentDetection(Augmentation):
    """One random sub-policy of an AutoAugment-for-detection policy (see module docstring).

    Takes the image (uint8 [H, W, C]) and its boxes (float [N, 4] XYXY absolute pixels, or None
    / empty) from ``AugInput``; returns a ``TransformList`` that moves boxes with the geometric
    operations (4-corner rule) and leaves them to photometric ones.
    """

    def __init__(self, policy: str = "v2", reference_size: int = 640, fill: int = 128):
        """
        Args:
            policy: a key of :data:`POLICIES`.
            reference_size: image side (px) at which TF's pixel constants apply unscaled.
            fill: value of pixels emptied by warps and cutouts.
        """
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"Unknown AutoAugment policy {policy!r} (INPUT.AUTOAUGMENT.POLICY): "
                             f"use one of {sorted(POLICIES)}.")
        if reference_size <= 0:
            raise ValueError(f"INPUT.AUTOAUGMENT.REFERENCE_SIZE must be > 0, got {reference_size}.")
        self._init(locals())

    def get_transform(self, image: np.ndarray, boxes: Optional[np.ndarray]) -> Transform:
        height, width = image.shape[:2]
        boxes = np.zeros((0, 4)) if boxes is None else np.asarray(boxes, np.float64).reshape(-1, 4)
        scale = max(height, width) / self.reference_size
        context = _Context(height, width, scale, self.fill, boxes)
        sub_policy = POLICIES[self.policy][np.random.randint(len(POLICIES[self.policy]))]
        transforms = []
        for name, prob, level in sub_policy:
            build, per_box = AUTOAUGMENT_OPS[name]
            context.prob = prob
            if not per_box and np.random.rand() >= prob:
                continue
            transform = build(level, context)
            if transform is None:
                continue
            transforms.append(transform)
            if len(context.boxes):
                context.boxes = transform.apply_box(context.boxes)
        return TransformList(transforms) if transforms else NoOpTransform()


def build_autoaugment(cfg: CfgNode) -> AutoAugmentDetection:
    """The augmentation of ``cfg.INPUT.AUTOAUGMENT`` (whether ENABLED is the caller's check)."""
    node = cfg.INPUT.AUTOAUGMENT
    return AutoAugmentDetection(node.POLICY, node.REFERENCE_SIZE)
