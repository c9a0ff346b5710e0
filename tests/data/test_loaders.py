"""The loader registry: DATALOADER.BUILDER picks the builder; "DetectionLoader" is detectron2's."""
import itertools

import numpy as np
import pytest
import torch
from detectron2.data import (
    DatasetCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)

from vertspine.config import get_vertspine_cfg
from vertspine.data import LOADER_REGISTRY, build_test_loader, build_train_loader
from vertspine.data.loaders import DetectionLoader, PatchLoader, get_loader_builder

_NAME = "_loaders_test_records"


def _mapper(record):
    """Detection-style output with a random flip drawn from numpy's global state."""
    flip = bool(np.random.rand() < 0.5)
    return {**record, "image": torch.full((1, 2, 2), float(record["image_id"])), "flip": flip}


@pytest.fixture
def dataset():
    records = [{"image_id": i, "file_name": f"{i}.png", "height": 4 + i % 2, "width": 6}
               for i in range(7)]
    DatasetCatalog.register(_NAME, lambda: records)
    cfg = get_vertspine_cfg()
    cfg.DATASETS.TRAIN, cfg.SOLVER.IMS_PER_BATCH, cfg.DATALOADER.NUM_WORKERS = (_NAME,), 2, 0
    yield cfg
    DatasetCatalog.remove(_NAME)


def _first_batches(loader, count=5):
    return [[(x["image_id"], x["flip"]) for x in batch]
            for batch in itertools.islice(iter(loader), count)]


def _seeded(build):
    np.random.seed(3)
    torch.manual_seed(3)
    return build()


def test_default_builder_gives_detectron2_batches(dataset):
    cfg = dataset
    assert cfg.DATALOADER.BUILDER == "DetectionLoader"
    assert get_loader_builder(cfg) is DetectionLoader
    ours = _first_batches(_seeded(lambda: build_train_loader(cfg, _mapper)))
    reference = _first_batches(_seeded(lambda: build_detection_train_loader(cfg, mapper=_mapper)))
    assert ours == reference and len(ours[0]) == 2
    test = [x["image_id"] for b in build_test_loader(cfg, _NAME, _mapper) for x in b]
    assert test == [x["image_id"] for b in build_detection_test_loader(cfg, _NAME, mapper=_mapper)
                    for x in b] == list(range(7))


def test_patch_loader_is_registered_with_detectron2_test_loader():
    assert LOADER_REGISTRY.get("PatchLoader") is PatchLoader
    assert PatchLoader.build_test_loader is DetectionLoader.build_test_loader


def test_registered_builder_is_selected_by_name(dataset):
    @LOADER_REGISTRY.register()
    class _LoaderForRegistryTest:
        @staticmethod
        def build_train_loader(cfg, mapper):
            return [[mapper(r) for r in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:2]]]

    cfg = dataset
    cfg.DATALOADER.BUILDER = "_LoaderForRegistryTest"
    assert [x["image_id"] for x in build_train_loader(cfg, _mapper)[0]] == [0, 1]


def test_unknown_builder_names_the_registered_ones():
    cfg = get_vertspine_cfg()
    cfg.DATALOADER.BUILDER = "NoSuchLoader"
    with pytest.raises(KeyError, match="NoSuchLoader.*DetectionLoader.*PatchLoader"):
        build_train_loader(cfg, _mapper)
