import pytest
from detectron2.data import DatasetMapper

from vertspine.config import get_vertspine_cfg
from vertspine.data import MAPPER_REGISTRY, VertspineDatasetMapper, build_dataset_mapper


def test_default_mapper_is_vertspine_mapper():
    cfg = get_vertspine_cfg()
    mapper = build_dataset_mapper(cfg, is_train=False)
    assert type(mapper) is VertspineDatasetMapper
    assert mapper.is_train is False


def test_augmentations_replace_config_ones():
    cfg = get_vertspine_cfg()
    mapper = build_dataset_mapper(cfg, is_train=True, augmentations=[])
    assert mapper.is_train is True
    assert len(mapper.augmentations.augs) == 0


def test_registered_mapper_is_selected_by_name():
    @MAPPER_REGISTRY.register()
    class _MapperForRegistryTest(DatasetMapper):
        pass

    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "_MapperForRegistryTest"
    assert type(build_dataset_mapper(cfg, is_train=True)) is _MapperForRegistryTest


def test_unknown_mapper_names_the_registered_ones():
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "NoSuchMapper"
    with pytest.raises(KeyError, match="NoSuchMapper.*VertspineDatasetMapper"):
        build_dataset_mapper(cfg, is_train=True)
