"""Few-shot subsets (DATASETS.TRAIN_SUBSET_SIZE / SEED): the same seed gives the same cases
whatever the record order, another seed other cases, the log names them, and both train loaders
read the subset."""
import logging

import pytest
from detectron2.data import DatasetCatalog

from vertspine.config import get_vertspine_cfg
from vertspine.data import build_train_loader
from vertspine.data.train_subset import select_subset, training_dataset_dicts

CASES = [f"case_{i:02d}" for i in range(10)]


def _records(order=CASES):
    return [{"image_id": name, "file_name": f"/data/{name}.nii.gz", "height": 8, "width": 8}
            for name in order]


def _ids(records):
    return [record["image_id"] for record in records]


def test_same_seed_same_cases_in_any_record_order():
    first = _ids(select_subset(_records(), 3, seed=0))
    assert len(first) == len(set(first)) == 3 and set(first) <= set(CASES)
    assert _ids(select_subset(_records(CASES[::-1]), 3, seed=0)) == first
    assert first == sorted(first)  # listed in case order


def test_other_seeds_other_cases():
    draws = {tuple(_ids(select_subset(_records(), 3, seed=seed))) for seed in range(6)}
    assert len(draws) >= 5  # C(10, 3) = 120 subsets; six seeds almost never repeat one


def test_size_zero_keeps_every_record():
    assert _ids(select_subset(_records(), 0, seed=3)) == CASES


def test_the_log_names_the_cases():
    records, messages = [], []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("vertspine.data.train_subset")
    logger.addHandler(handler)
    old_level, logger.level = logger.level, logging.INFO
    try:
        records = select_subset(_records(), 2, seed=7, what="vessels_train")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert len(messages) == 1
    assert "2 of the 10 records of vessels_train" in messages[0]
    assert messages[0].endswith(", ".join(_ids(records)))


@pytest.mark.parametrize("size,seed,match", [
    (11, 0, "TRAIN_SUBSET_SIZE is 11, but d has only 10 records"),
    (-1, 0, "must be >= 0"),
    (2, -3, "must be >= 0"),
])
def test_bad_sizes_are_errors(size, seed, match):
    with pytest.raises(ValueError, match=match):
        select_subset(_records(), size, seed, what="d")


def test_duplicate_identities_are_an_error():
    with pytest.raises(ValueError, match="sharing an image_id"):
        select_subset(_records(CASES + CASES[:1]), 2, seed=0)


class PatchesOf:
    """A patch mapper that returns the record itself as its one patch."""

    def set_random_state(self, seed):
        pass

    def __call__(self, record):
        return [record]


@pytest.fixture
def registered():
    name = "test_train_subset_cases"
    DatasetCatalog.register(name, _records)
    yield name
    DatasetCatalog.remove(name)


@pytest.mark.parametrize("builder", ["DetectionLoader", "PatchLoader"])
def test_train_loaders_read_the_subset(registered, builder):
    cfg = get_vertspine_cfg()
    cfg.merge_from_list(["DATASETS.TRAIN", (registered,), "DATASETS.TRAIN_SUBSET_SIZE", 2,
                         "DATASETS.TRAIN_SUBSET_SEED", 5, "DATALOADER.BUILDER", builder,
                         "DATALOADER.NUM_WORKERS", 0, "SOLVER.IMS_PER_BATCH", 2, "SEED", 0,
                         "DATALOADER.FILTER_EMPTY_ANNOTATIONS", False])
    chosen = _ids(training_dataset_dicts(cfg))
    assert chosen == _ids(select_subset(_records(), 2, seed=5))
    mapper = PatchesOf() if builder == "PatchLoader" else (lambda record: record)
    loader = iter(build_train_loader(cfg, mapper))
    seen = {record["image_id"] for _ in range(4) for record in next(loader)}
    assert seen == set(chosen)
