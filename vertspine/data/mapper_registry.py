"""Choosing the dataset mapper of a run from ``INPUT.DATASET_MAPPER``, in one place.

A model family whose inputs differ from detectron2's detection records (ground-truth boxes kept
at test time, image-level labels, segmentation masks) registers its mapper class here and names
it in its base YAML. A mapper class is built as ``cls(cfg, is_train=...)``, and, for the
validation-loss loader, ``cls(cfg, is_train=True, augmentations=[...])``: detectron2's
``@configurable`` ``DatasetMapper`` subclasses accept both.
"""
from typing import Callable, List, Optional

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry

from .dataset_mapper import VertspineDatasetMapper

__all__ = ["MAPPER_REGISTRY", "build_dataset_mapper"]

MAPPER_REGISTRY = Registry("VERTSPINE_MAPPER")
MAPPER_REGISTRY.__doc__ = "Dataset mapper classes selectable with INPUT.DATASET_MAPPER."
MAPPER_REGISTRY.register(VertspineDatasetMapper)


def build_dataset_mapper(
    cfg: CfgNode, is_train: bool, augmentations: Optional[List] = None
) -> Callable:
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER``.

    Args:
        cfg: the run's config.
        is_train: training mapping (annotations transformed) or test mapping.
        augmentations: replaces the mapper's config-built augmentations when given.
    Raises:
        KeyError: the name is not registered; the message lists the registered names.
    """
    name = cfg.INPUT.DATASET_MAPPER
    if name not in MAPPER_REGISTRY:
        raise KeyError(
            f"INPUT.DATASET_MAPPER '{name}' is not a registered mapper; registered: "
            f"{', '.join(sorted(k for k, _ in MAPPER_REGISTRY))}."
        )
    mapper_class = MAPPER_REGISTRY.get(name)
    if augmentations is None:
        return mapper_class(cfg, is_train=is_train)
    return mapper_class(cfg, is_train=is_train, augmentations=augmentations)
