"""Image-level classification as a vertspine model family.

Importing this package registers the ``ImageClassifier`` meta-architecture and the
``build_timm_backbone`` backbone. Configure them with :func:`add_image_classifier_config`
(``MODEL.IMAGE_CLASSIFIER``, ``MODEL.TIMM``, ``INPUT.SQUARE_*``, ``TEST.CLASSIFICATION``,
``DATASETS.IMAGE_FOLDER``). Data: :class:`vertspine.data.ImageLabelDatasetMapper`; evaluation:
the "classification" evaluator (:mod:`vertspine.evaluation.classification`).
"""
from .checkpoint import backbone_loaded_fully, convert_torchvision_to_timm
from .classifier import ImageClassifier
from .config import add_image_classifier_config
from .head import ClassificationHead, masked_global_pool
from .loss import ClassificationLoss
from .timm_backbone import TimmBackbone, build_timm_backbone

__all__ = [
    "ClassificationHead",
    "ClassificationLoss",
    "ImageClassifier",
    "TimmBackbone",
    "add_image_classifier_config",
    "backbone_loaded_fully",
    "build_timm_backbone",
    "convert_torchvision_to_timm",
    "masked_global_pool",
]
