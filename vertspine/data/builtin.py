"""Named phantom datasets in detectron2's ``DatasetCatalog`` / ``MetadataCatalog``.

Importing this module registers ``phantom_vertebrae_{train,val}`` (25 VerSe level classes,
with masks) and ``phantom_lesions_{train,val}`` (7 VinDr-SpineXR lesion classes, normal
images included as negatives) under ``$VERTSPINE_DATASETS/phantom`` (default
``datasets/phantom``, relative to the working directory at import). Nothing is generated at
import: the data is written by :func:`~vertspine.data.phantom.ensure_phantom_dataset` the first
time one of these datasets is loaded, and reused while its manifest matches.
"""
import functools
import os
from typing import List, Optional

from detectron2.data import DatasetCatalog

from .coco_registration import register_coco_dataset, unregister_dataset
from .phantom import (
    LESION_CLASSES,
    SPLITS,
    VERTEBRA_LEVELS,
    PhantomConfig,
    ensure_phantom_dataset,
    phantom_dataset_paths,
)

__all__ = ["PHANTOM_DATASET_NAMES", "default_phantom_root", "register_phantom_datasets"]

_TASKS = {"vertebrae": VERTEBRA_LEVELS, "lesions": LESION_CLASSES}
PHANTOM_DATASET_NAMES = tuple(f"phantom_{task}_{split}" for task in _TASKS for split in SPLITS)


def default_phantom_root() -> str:
    """``$VERTSPINE_DATASETS/phantom``, with ``datasets`` when the variable is unset."""
    return os.path.join(os.environ.get("VERTSPINE_DATASETS", "datasets"), "phantom")


def register_phantom_datasets(
    root: Optional[str] = None, cfg: Optional[PhantomConfig] = None
) -> List[str]:
    """(Re-)register the four phantom datasets on the data under ``root``.

    Names already registered are removed first, so this can be called again with another
    root or config.

    Args:
        root: dataset folder; None means :func:`default_phantom_root`.
        cfg: dataset parameters; None means ``PhantomConfig()`` (200 train, 50 val, 256 px).
    Returns:
        the registered names: phantom_vertebrae_train/val, phantom_lesions_train/val.
    """
    root = root or default_phantom_root()
    cfg = cfg or PhantomConfig()
    paths = phantom_dataset_paths(root)
    prepare = functools.partial(ensure_phantom_dataset, root, cfg)
    for task, classes in _TASKS.items():
        extra = {"level_names": list(VERTEBRA_LEVELS)} if task == "vertebrae" else {}
        for split in SPLITS:
            name = f"phantom_{task}_{split}"
            if name in DatasetCatalog:
                unregister_dataset(name)
            register_coco_dataset(
                name,
                paths[split][f"{task}_json"],
                paths[split]["image_root"],
                num_classes=len(classes),
                prepare=prepare,
                thing_classes=list(classes),
                evaluator_type="coco",
                **extra,
            )
    return list(PHANTOM_DATASET_NAMES)


register_phantom_datasets()
