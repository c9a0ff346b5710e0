"""``DATALOADER.BUILDER "PatchLoader"``: several random patches per volume, sharded and seeded.

The training stream, per process:

1. :class:`ShardedTrainingSampler` (detectron2's ``TrainingSampler``): an infinite stream of
   record indices, reshuffled every epoch with the run's seed (shared by all processes); process
   ``rank`` takes positions ``rank, rank + world_size, ...``, so each process draws its own shard.
2. :class:`PatchStream`: for the visit at position ``p`` of that shard, the mapper's random state
   is set to :func:`visit_seed` ``(seed, rank, p)`` and the mapper returns its patches
   (``INPUT.VOLUME.PATCHES_PER_VOLUME`` with :class:`vertspine.data.VolumeMapper`). DataLoader
   workers take every ``num_workers``-th visit and torch returns them in stream order.
3. :class:`PatchBatches`: the patches, in stream order, grouped in batches of
   ``SOLVER.IMS_PER_BATCH / world_size``.

So a patch depends only on (seed, rank, position): the same seed gives the same batches with 0 or
several workers. ``DATALOADER.SAMPLER_TRAIN`` and ``ASPECT_RATIO_GROUPING`` do not apply (every
record is visited equally often; patches share one size). The test loader is detectron2's (one
whole volume per batch).
"""
import itertools
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data.samplers import TrainingSampler
from detectron2.utils import comm
from torch.utils.data import IterableDataset, get_worker_info

from ..train_subset import training_dataset_dicts
from .registry import LOADER_REGISTRY, DetectionLoader

__all__ = ["PatchBatches", "PatchLoader", "PatchStream", "ShardedTrainingSampler",
           "build_patch_train_loader", "visit_seed"]


class ShardedTrainingSampler(TrainingSampler):
    """detectron2's ``TrainingSampler`` for a given ``rank`` of ``world_size`` processes
    (instead of the calling process's): indices at positions ``rank::world_size`` of the
    seeded infinite shuffled stream."""

    def __init__(self, size: int, *, seed: int, rank: int, world_size: int, shuffle: bool = True):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1} (world size "
                             f"{world_size}).")
        super().__init__(size, shuffle=shuffle, seed=seed)
        self._rank, self._world_size = rank, world_size


def visit_seed(seed: int, rank: int, position: int) -> int:
    """The seed (0 .. 2**32 - 1) of the patch draws at ``position`` of ``rank``'s stream."""
    return int(np.random.SeedSequence([seed, rank, position]).generate_state(1)[0])


class PatchStream(IterableDataset):
    """Infinite stream of visits; each item is the list of patch dicts the mapper returns for one
    record, drawn with the random state :func:`visit_seed` ``(seed, rank, position)``."""

    def __init__(self, records: Sequence[Dict[str, Any]], mapper: Callable,
                 sampler: ShardedTrainingSampler, *, seed: int, rank: int):
        """
        Args:
            records: the dataset records (volume records for :class:`VolumeMapper`).
            mapper: returns a list of patch dicts per record and has ``set_random_state(seed)``.
            sampler: the index stream of this process.
            seed: the run's seed (the same in every process).
            rank: this process's rank.
        """
        if not callable(getattr(mapper, "set_random_state", None)):
            raise TypeError(
                f"DATALOADER.BUILDER 'PatchLoader' needs a mapper with set_random_state(seed) "
                f"that returns a list of patches per record; {type(mapper).__name__} has none. "
                "Set INPUT.DATASET_MAPPER 'VolumeMapper' (or register such a mapper).")
        self.records, self.mapper, self.sampler = records, mapper, sampler
        self.seed, self.rank = seed, rank

    def __iter__(self) -> Iterator[List[Dict[str, Any]]]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        visits = itertools.islice(enumerate(self.sampler), worker, None, num_workers)
        for position, index in visits:
            self.mapper.set_random_state(visit_seed(self.seed, self.rank, position))
            patches = self.mapper(self.records[index])
            if not isinstance(patches, list):
                raise TypeError(f"The mapper {type(self.mapper).__name__} returned a "
                                f"{type(patches).__name__}; PatchLoader needs a list of patches.")
            yield patches


class PatchBatches:
    """Batches of ``batch_size`` patch dicts from an iterable of visits (lists of patches)."""

    def __init__(self, visits: Any, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"Batch size {batch_size}: SOLVER.IMS_PER_BATCH must be at least "
                             "the number of processes.")
        self.visits, self.batch_size = visits, batch_size

    def __iter__(self) -> Iterator[List[Dict[str, Any]]]:
        batch = []
        for patches in self.visits:
            for patch in patches:
                batch.append(patch)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []


def _visits_as_they_come(visit: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """DataLoader ``collate_fn``: a visit stays a list of dicts (tensors untouched)."""
    return visit


def build_patch_train_loader(records: Sequence[Dict[str, Any]], mapper: Callable, *,
                             batch_size: int, seed: int, num_workers: int = 0,
                             rank: Optional[int] = None,
                             world_size: Optional[int] = None) -> PatchBatches:
    """The training batches of one process.

    Args:
        records: the dataset records.
        mapper: see :class:`PatchStream`.
        batch_size: patches per batch in this process.
        seed: the run's seed, >= 0 and the same in every process.
        num_workers: DataLoader worker processes (0: draw in this process).
        rank, world_size: this process and the process count (default: from detectron2's comm).
    Returns:
        An infinite iterable of lists of ``batch_size`` patch dicts.
    """
    rank = comm.get_rank() if rank is None else rank
    world_size = comm.get_world_size() if world_size is None else world_size
    sampler = ShardedTrainingSampler(len(records), seed=seed, rank=rank, world_size=world_size)
    stream = PatchStream(records, mapper, sampler, seed=seed, rank=rank)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=num_workers,
                                         collate_fn=_visits_as_they_come)
    return PatchBatches(loader, batch_size)


@LOADER_REGISTRY.register()
class PatchLoader(DetectionLoader):
    """Training: ``PATCHES_PER_VOLUME`` random patches per visit of a ``DATASETS.TRAIN`` record
    (the ``DATASETS.TRAIN_SUBSET_SIZE`` chosen ones, :mod:`vertspine.data.train_subset`; the
    mapper draws the patches), ``SOLVER.IMS_PER_BATCH`` patches per iteration over all processes,
    ``DATALOADER.NUM_WORKERS`` workers per process, seeded by ``SEED`` (a seed shared by the
    processes when negative). Test: detectron2's test loader (whole volumes)."""

    @staticmethod
    def build_train_loader(cfg: CfgNode, mapper: Callable) -> PatchBatches:
        world_size = comm.get_world_size()
        if cfg.SOLVER.IMS_PER_BATCH % world_size:
            raise ValueError(f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}) must be a "
                             f"multiple of the number of processes ({world_size}).")
        records = training_dataset_dicts(cfg, filter_empty=False)
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        return build_patch_train_loader(records, mapper,
                                        batch_size=cfg.SOLVER.IMS_PER_BATCH // world_size,
                                        seed=seed, num_workers=cfg.DATALOADER.NUM_WORKERS)
