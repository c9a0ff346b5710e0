"""Choosing the train/test loaders of a run from ``DATALOADER.BUILDER``, in one place.

A loader builder is a class registered in :data:`LOADER_REGISTRY` with two static or class
methods: ``build_train_loader(cfg, mapper)``, an iterable of training batches (lists of the
mapper's dicts, ``SOLVER.IMS_PER_BATCH / world size`` per process), and
``build_test_loader(cfg, dataset_name, mapper)``. The mapper comes from
:func:`vertspine.data.build_dataset_mapper`, so loader and mapper are chosen independently.
"""
from typing import Callable, Iterable

from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.utils.registry import Registry

from ..train_subset import training_dataset_dicts

__all__ = ["DetectionLoader", "LOADER_REGISTRY", "build_test_loader", "build_train_loader",
           "get_loader_builder"]

LOADER_REGISTRY = Registry("VERTSPINE_LOADER")
LOADER_REGISTRY.__doc__ = "Loader builders selectable with DATALOADER.BUILDER."


@LOADER_REGISTRY.register()
class DetectionLoader:
    """detectron2's loaders: one mapped sample per record, ``DATALOADER.*`` sampling and
    aspect-ratio grouping in training, one image per batch at test time."""

    @staticmethod
    def build_train_loader(cfg: CfgNode, mapper: Callable) -> Iterable:
        if not cfg.DATASETS.TRAIN_SUBSET_SIZE:
            return build_detection_train_loader(cfg, mapper=mapper)
        dataset = training_dataset_dicts(  # detectron2's own reading, then the subset
            cfg, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE
            if cfg.MODEL.KEYPOINT_ON else 0,
            proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None)
        return build_detection_train_loader(cfg, mapper=mapper, dataset=dataset)

    @staticmethod
    def build_test_loader(cfg: CfgNode, dataset_name: str, mapper: Callable) -> Iterable:
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)


def get_loader_builder(cfg: CfgNode):
    """The builder class named by ``cfg.DATALOADER.BUILDER``.

    Raises:
        KeyError: the name is not registered; the message lists the registered names.
    """
    name = cfg.DATALOADER.BUILDER
    if name not in LOADER_REGISTRY:
        raise KeyError(f"DATALOADER.BUILDER '{name}' is not a registered loader; registered: "
                       f"{', '.join(sorted(k for k, _ in LOADER_REGISTRY))}.")
    return LOADER_REGISTRY.get(name)


def build_train_loader(cfg: CfgNode, mapper: Callable) -> Iterable:
    """The training loader of ``DATALOADER.BUILDER`` over ``DATASETS.TRAIN``."""
    return get_loader_builder(cfg).build_train_loader(cfg, mapper)


def build_test_loader(cfg: CfgNode, dataset_name: str, mapper: Callable) -> Iterable:
    """The test loader of ``DATALOADER.BUILDER`` over ``dataset_name``."""
    return get_loader_builder(cfg).build_test_loader(cfg, dataset_name, mapper)
