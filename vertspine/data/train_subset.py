"""Few-shot training: ``DATASETS.TRAIN_SUBSET_SIZE`` records of ``DATASETS.TRAIN`` chosen by a seed.

vesselFM fine-tunes on the first N cases after sorting; here the N cases are a seeded random
choice (``DATASETS.TRAIN_SUBSET_SEED``), so several draws of N can be compared, and the chosen
cases are named in the log. The choice depends only on the records' identities (``image_id``,
else ``file_name``), sorted first, and on the seed: the order in which a dataset lists its
records, the process and the run's ``SEED`` do not change it. Every train loader reads its
records through :func:`training_dataset_dicts`.
"""
import logging
from typing import Any, Dict, List, Sequence

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import get_detection_dataset_dicts

__all__ = ["select_subset", "training_dataset_dicts"]

logger = logging.getLogger(__name__)


def _identity(record: Dict[str, Any]) -> str:
    return str(record.get("image_id", record.get("file_name", "")))


def select_subset(records: Sequence[Dict[str, Any]], size: int, seed: int,
                  what: str = "DATASETS.TRAIN") -> List[Dict[str, Any]]:
    """``size`` records chosen without replacement by ``seed`` (all of them when ``size`` is 0),
    in the order of their identities; the choice is logged with every case's name.

    Args:
        records: dataset dicts with ``image_id`` or ``file_name``.
        size: how many to keep; 0 keeps all.
        seed: the choice's seed (>= 0).
        what: the datasets' names, for messages.
    Raises:
        ValueError: ``size`` or ``seed`` negative, ``size`` larger than the records, or two
            records sharing an identity (the choice would not be reproducible).
    """
    if size < 0 or seed < 0:
        raise ValueError(f"DATASETS.TRAIN_SUBSET_SIZE ({size}) and TRAIN_SUBSET_SEED ({seed}) "
                         "must be >= 0 (size 0: every training record).")
    if size == 0:
        return list(records)
    if size > len(records):
        raise ValueError(f"DATASETS.TRAIN_SUBSET_SIZE is {size}, but {what} has only "
                         f"{len(records)} records: lower it to at most {len(records)}, or 0 for "
                         "all of them.")
    identities = [_identity(record) for record in records]
    if len(set(identities)) != len(identities):
        raise ValueError(f"{what} has records sharing an image_id/file_name; a subset chosen by "
                         "DATASETS.TRAIN_SUBSET_SEED needs distinct ones.")
    order = sorted(range(len(records)), key=identities.__getitem__)
    chosen = sorted(np.random.default_rng(seed).choice(len(order), size, replace=False))
    subset = [records[order[i]] for i in chosen]
    logger.info("Training on %d of the %d records of %s (DATASETS.TRAIN_SUBSET_SIZE %d, "
                "TRAIN_SUBSET_SEED %d): %s", size, len(records), what, size, seed,
                ", ".join(_identity(record) for record in subset))
    return subset


def training_dataset_dicts(cfg: CfgNode, **kwargs: Any) -> List[Dict[str, Any]]:
    """The records of ``DATASETS.TRAIN`` (``get_detection_dataset_dicts(..., **kwargs)``),
    reduced to the ``DATASETS.TRAIN_SUBSET_SIZE`` chosen by ``TRAIN_SUBSET_SEED``."""
    records = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, **kwargs)
    return select_subset(records, cfg.DATASETS.TRAIN_SUBSET_SIZE, cfg.DATASETS.TRAIN_SUBSET_SEED,
                         ", ".join(cfg.DATASETS.TRAIN))
