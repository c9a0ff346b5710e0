"""Choosing the dataset mapper of a run from ``INPUT.DATASET_MAPPER``, in one place.

A model family whose inputs differ from detectron2's detection records (ground-truth boxes kept
at test time, image-level labels, segmentation masks, volumes) registers its mapper class here and
names it in its base YAML. A mapper class is built as ``cls(cfg, is_train=...)`` (detectron2's
``@configurable`` ``DatasetMapper`` subclasses also accept ``augmentations=[...]``). A mapper
that supports validation losses (``TEST.VAL_LOSS_PERIOD``) also has the classmethod
``evaluation_with_ground_truth(cfg)``: its own deterministic test-time transform, with the ground
truth kept in the form the model's training losses take.
"""
from typing import Callable, List, Optional

from detectron2.config import CfgNode
from detectron2.utils.registry import Registry

from .dataset_mapper import VertspineDatasetMapper

__all__ = ["MAPPER_REGISTRY", "build_dataset_mapper"]

MAPPER_REGISTRY = Registry("VERTSPINE_MAPPER")
MAPPER_REGISTRY.__doc__ = "Dataset mapper classes selectable with INPUT.DATASET_MAPPER."
MAPPER_REGISTRY.register(VertspineDatasetMapper)

_GROUND_TRUTH_BUILDER = "evaluation_with_ground_truth"


def build_dataset_mapper(
    cfg: CfgNode, is_train: bool, augmentations: Optional[List] = None, *,
    with_ground_truth: bool = False,
) -> Callable:
    """The mapper named by ``cfg.INPUT.DATASET_MAPPER``.

    Args:
        cfg: the run's config.
        is_train: training mapping (annotations transformed) or test mapping.
        augmentations: replaces the mapper's config-built augmentations when given.
        with_ground_truth: with ``is_train`` False, the evaluation mapping that keeps the ground
            truth as training does (for validation losses), built by the mapper class's
            ``evaluation_with_ground_truth(cfg)``.
    Raises:
        KeyError: the name is not registered; the message lists the registered names.
        ValueError: ``with_ground_truth`` with ``is_train`` or ``augmentations``.
        TypeError: ``with_ground_truth`` and the mapper class lacks the classmethod.
    """
    name = cfg.INPUT.DATASET_MAPPER
    if name not in MAPPER_REGISTRY:
        raise KeyError(
            f"INPUT.DATASET_MAPPER '{name}' is not a registered mapper; registered: "
            f"{', '.join(sorted(k for k, _ in MAPPER_REGISTRY))}."
        )
    mapper_class = MAPPER_REGISTRY.get(name)
    if with_ground_truth:
        if is_train or augmentations is not None:
            raise ValueError("with_ground_truth builds the mapper's own evaluation mapping: call "
                             "build_dataset_mapper(cfg, is_train=False, with_ground_truth=True).")
        if not hasattr(mapper_class, _GROUND_TRUTH_BUILDER):
            raise TypeError(
                f"INPUT.DATASET_MAPPER '{name}' has no classmethod {_GROUND_TRUTH_BUILDER}(cfg), "
                "needed for the validation loss (TEST.VAL_LOSS_PERIOD > 0): add it to the mapper "
                "(its test-time transform, ground truth kept) or set TEST.VAL_LOSS_PERIOD 0.")
        return getattr(mapper_class, _GROUND_TRUTH_BUILDER)(cfg)
    if augmentations is None:
        return mapper_class(cfg, is_train=is_train)
    return mapper_class(cfg, is_train=is_train, augmentations=augmentations)
