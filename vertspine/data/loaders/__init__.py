"""Train/test loader builders chosen by ``DATALOADER.BUILDER``: detectron2's detection loader
(:class:`DetectionLoader`, the default) and the patch loader of volumes (:class:`PatchLoader`)."""
from .patch_loader import (
    PatchBatches,
    PatchLoader,
    PatchStream,
    ShardedTrainingSampler,
    build_patch_train_loader,
    visit_seed,
)
from .registry import (
    LOADER_REGISTRY,
    DetectionLoader,
    build_test_loader,
    build_train_loader,
    get_loader_builder,
)

__all__ = [
    "DetectionLoader",
    "LOADER_REGISTRY",
    "PatchBatches",
    "PatchLoader",
    "PatchStream",
    "ShardedTrainingSampler",
    "build_patch_train_loader",
    "build_test_loader",
    "build_train_loader",
    "get_loader_builder",
    "visit_seed",
]
