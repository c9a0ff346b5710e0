"""The one resize/flip builder: the three mappers that used to build their own get the same
augmentations, the same images and the same random draws as their previous code."""
import numpy as np
import pytest
from detectron2.data import transforms as T

from vertspine.config import get_vertspine_cfg
from vertspine.data import ImageLabelDatasetMapper, SemSegDatasetMapper
from vertspine.data.transforms import build_flip, build_resize_flip, build_test_resize
from vertspine.modeling.vertfound import VertFoundDatasetMapper


def _flip(cfg):
    return [T.RandomFlip(horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                         vertical=cfg.INPUT.RANDOM_FLIP == "vertical")]


# The constructions each mapper had before (copied from the previous code).
def _image_label_before(cfg, is_train):
    if is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                     cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)] + (
            _flip(cfg) if cfg.INPUT.RANDOM_FLIP != "none" else [])
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]


def _sem_seg_before(cfg, is_train):
    flip = _flip(cfg) if is_train and cfg.INPUT.RANDOM_FLIP != "none" else []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)] + flip


def _vertfound_before(cfg, is_train):
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)]
    flip = [T.RandomFlip(horizontal=True, vertical=False)] if cfg.INPUT.RANDOM_FLIP != "none" \
        else []
    return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN,
                                 cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)] + flip


def _run(augmentations, image, seed):
    """The augmented image and numpy's global random state afterwards."""
    np.random.seed(seed)
    aug_input = T.AugInput(image.copy())
    T.AugmentationList(augmentations)(aug_input)
    return aug_input.image, np.random.get_state()[1].copy()


@pytest.mark.parametrize("mapper, before, flips", [
    (ImageLabelDatasetMapper, _image_label_before, ("none", "horizontal", "vertical")),
    (SemSegDatasetMapper, _sem_seg_before, ("none", "horizontal", "vertical")),
    (VertFoundDatasetMapper, _vertfound_before, ("none", "horizontal")),
])
@pytest.mark.parametrize("is_train", [True, False])
def test_mappers_augment_exactly_as_before(mapper, before, flips, is_train):
    image = np.random.default_rng(0).integers(0, 255, (30, 45, 3), dtype=np.uint8)
    samplings = {"choice": (12, 20, 28), "range": (12, 28)}
    for flip, sampling in [(f, s) for f in flips for s in samplings]:
        cfg = get_vertspine_cfg()
        cfg.INPUT.RANDOM_FLIP, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = flip, sampling
        cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = samplings[sampling], 40
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 18, 40
        ours = mapper.from_config(cfg, is_train=is_train)["augmentations"]
        for seed in range(6):
            image_now, state_now = _run(ours, image, seed)
            image_before, state_before = _run(before(cfg, is_train), image, seed)
            np.testing.assert_array_equal(image_now, image_before)
            np.testing.assert_array_equal(state_now, state_before)


def test_builders():
    cfg = get_vertspine_cfg()
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.RANDOM_FLIP = 100, 300, "vertical"
    resize = build_test_resize(cfg)
    assert resize.short_edge_length == (100, 100) and resize.max_size == 300 and resize.is_range
    (flip,) = build_flip(cfg)
    assert flip.vertical and not flip.horizontal and flip.prob == 0.5
    train = build_resize_flip(cfg, is_train=True)
    assert [type(a) for a in train] == [T.ResizeShortestEdge, T.RandomFlip]
    assert train[0].short_edge_length == tuple(cfg.INPUT.MIN_SIZE_TRAIN)
    cfg.INPUT.RANDOM_FLIP = "none"
    assert build_flip(cfg) == [] and len(build_resize_flip(cfg, is_train=True)) == 1
    cfg.INPUT.RANDOM_FLIP = "diagonal"
    with pytest.raises(ValueError, match="INPUT.RANDOM_FLIP is 'diagonal'"):
        build_flip(cfg)
