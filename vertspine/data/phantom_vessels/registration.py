"""``phantom_vessels_{train,val,test}`` and ``phantom_vessels_shift_{test,train}`` as volume
datasets (the shift domain's test split and its few-shot fine-tuning pool).

Each split is a :func:`~vertspine.data.volume_datasets.register_volume_folder` dataset (class
"vessel", ``evaluator_type`` "vessel", ``appearance_domain`` "train" or "shift") under
``$VERTSPINE_DATASETS/phantom_vessels/<split>``. Nothing is generated at registration: the first
``DatasetCatalog.get`` of a split whose files are missing (or stale) generates that split
(:func:`.writer.ensure_vessel_split`).
"""
import functools
from typing import List, Optional

from ..coco_registration import unregister_dataset
from ..datasets_root import datasets_root
from ..volume_datasets import register_volume_folder
from .config import SPLIT_DOMAINS, SPLITS, VesselPhantomConfig
from .writer import ensure_vessel_split, vessel_split_paths

__all__ = ["VESSEL_CLASSES", "VESSEL_DATASET_NAMES", "default_vessel_root",
           "register_phantom_vessels"]

VESSEL_CLASSES = ("vessel",)
VESSEL_DATASET_NAMES = tuple(f"phantom_vessels_{split}" for split in SPLITS)


def default_vessel_root() -> str:
    """``$VERTSPINE_DATASETS/phantom_vessels`` (``datasets/phantom_vessels`` when unset)."""
    return datasets_root("phantom_vessels")


def register_phantom_vessels(root: Optional[str] = None,
                             cfg: Optional[VesselPhantomConfig] = None) -> List[str]:
    """(Re-)register the four vessel phantom datasets on ``root`` (names registered before are
    replaced, so this can be called again with another root or config).

    Args:
        root: dataset folder; None means :func:`default_vessel_root`.
        cfg: generator parameters; None means ``VesselPhantomConfig()`` (24/8/32/16/8
            volumes).
    Returns:
        the registered names, in :data:`~.config.SPLITS` order.
    """
    root = root or default_vessel_root()
    cfg = cfg or VesselPhantomConfig()
    for split, name in zip(SPLITS, VESSEL_DATASET_NAMES):
        paths = vessel_split_paths(root, split)
        unregister_dataset(name, missing_ok=True)
        register_volume_folder(
            name, paths["image_dir"], paths["label_dir"], class_names=list(VESSEL_CLASSES),
            empty_labels="error", prepare=functools.partial(ensure_vessel_split, root, split, cfg),
            evaluator_type="vessel", appearance_domain=SPLIT_DOMAINS[split])
    return list(VESSEL_DATASET_NAMES)
