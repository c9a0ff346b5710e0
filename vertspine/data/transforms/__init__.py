"""detectron2 augmentations and transforms of vertspine: resize/flip from ``INPUT.*``, AutoAugment.

:mod:`.resize_flip` (the one builder of resize and flip from ``INPUT.*``), :mod:`.autoaugment`
(policies, :class:`AutoAugmentDetection`), :mod:`.autoaugment_ops` (the operations as
``Transform`` classes that move boxes), :mod:`.config` (``INPUT.AUTOAUGMENT``).
"""
from .autoaugment import AUTOAUGMENT_OPS, POLICIES, AutoAugmentDetection, build_autoaugment
from .autoaugment_ops import (
    AffineTransform,
    AutoContrastTransform,
    BoxContentTranslateTransform,
    BrightnessTransform,
    CutoutTransform,
    EnhanceTransform,
    EqualizeTransform,
    PhotometricTransform,
    SolarizeAddTransform,
    SolarizeTransform,
    rotation_matrix,
    shear_matrix,
    translation_matrix,
)
from .config import add_autoaugment_config
from .resize_flip import build_flip, build_resize_flip, build_test_resize

__all__ = [
    "AUTOAUGMENT_OPS",
    "AffineTransform",
    "AutoAugmentDetection",
    "AutoContrastTransform",
    "BoxContentTranslateTransform",
    "BrightnessTransform",
    "CutoutTransform",
    "EnhanceTransform",
    "EqualizeTransform",
    "POLICIES",
    "PhotometricTransform",
    "SolarizeAddTransform",
    "SolarizeTransform",
    "add_autoaugment_config",
    "build_autoaugment",
    "build_flip",
    "build_resize_flip",
    "build_test_resize",
    "rotation_matrix",
    "shear_matrix",
    "translation_matrix",
]
