import pytest
from detectron2.data import DatasetMapper
from detectron2.data import transforms as T

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


@pytest.mark.parametrize("name", ["VertspineDatasetMapper", "ImageLabelDatasetMapper",
                                  "SemSegDatasetMapper", "VertFoundDatasetMapper"])
def test_evaluation_with_ground_truth_is_the_test_resize_without_randomness(name):
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER, cfg.INPUT.RANDOM_FLIP = name, "horizontal"
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 256, 512
    mapper = build_dataset_mapper(cfg, is_train=False, with_ground_truth=True)
    assert type(mapper) is MAPPER_REGISTRY.get(name)
    assert mapper.is_train  # ground truth in the form the training losses take
    augs = mapper.augmentations.augs
    assert [type(a) for a in augs] == [T.ResizeShortestEdge]
    assert augs[0].short_edge_length == (256, 256) and augs[0].max_size == 512
    assert augs[0].is_range  # a single size drawn without touching numpy's random state


def test_evaluation_with_ground_truth_needs_the_classmethod():
    @MAPPER_REGISTRY.register()
    class _MapperWithoutGroundTruthMode:
        def __init__(self, cfg, is_train=True):
            pass

    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "_MapperWithoutGroundTruthMode"
    with pytest.raises(TypeError, match="evaluation_with_ground_truth.*TEST.VAL_LOSS_PERIOD"):
        build_dataset_mapper(cfg, is_train=False, with_ground_truth=True)
    with pytest.raises(ValueError, match="is_train=False"):
        build_dataset_mapper(get_vertspine_cfg(), is_train=True, with_ground_truth=True)
