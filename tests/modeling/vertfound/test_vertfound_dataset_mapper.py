"""VertFoundDatasetMapper: ground truth kept at test time, consistent transforms, cache safety."""
import pytest
import torch
from detectron2.data import transforms as T

from vertspine.data import MAPPER_REGISTRY, build_dataset_mapper
from vertspine.modeling.vertfound import VertFoundDatasetMapper
from vertfound_test_utils import records, tiny_cfg, vertebra_opts


@pytest.fixture(scope="module")
def dataset(tiny_phantom):
    from vertspine.data import register_datasets_from_config

    cfg = tiny_cfg(*vertebra_opts(tiny_phantom["root"]))
    register_datasets_from_config(cfg)
    return cfg


def test_registered_and_named_in_the_base_config(dataset):
    assert MAPPER_REGISTRY.get("VertFoundDatasetMapper") is VertFoundDatasetMapper
    assert dataset.INPUT.DATASET_MAPPER == "VertFoundDatasetMapper"
    assert isinstance(build_dataset_mapper(dataset, is_train=False), VertFoundDatasetMapper)


def test_test_time_keeps_boxes_classes_and_indices(dataset):
    record = records("tiny_vertebrae_val", 1)[0]
    out = VertFoundDatasetMapper(dataset, is_train=False)(record)
    inst = out["instances"]
    anns = record["annotations"]
    assert len(inst) == len(anns) > 0
    assert inst.gt_indices.tolist() == list(range(len(anns)))
    assert inst.gt_classes.tolist() == [a["category_id"] for a in anns]
    torch.testing.assert_close(inst.gt_boxes.tensor, torch.tensor([a["bbox"] for a in anns]))
    assert out["image"].shape == (3, record["height"], record["width"])
    assert out["image"].dtype == torch.uint8
    assert "annotations" not in out and out["image_id"] == record["image_id"]


def test_boxes_follow_a_flip_and_a_resize(dataset):
    record = records("tiny_vertebrae_train", 1)[0]
    width = record["width"]
    augs = [T.ResizeShortestEdge(128, 1000), T.RandomFlip(prob=1.0)]
    out = VertFoundDatasetMapper(dataset, is_train=True, augmentations=augs)(record)
    boxes = torch.tensor([a["bbox"] for a in record["annotations"]]) * 0.5
    flipped = torch.stack([width / 2 - boxes[:, 2], boxes[:, 1], width / 2 - boxes[:, 0],
                           boxes[:, 3]], 1)
    torch.testing.assert_close(out["instances"].gt_boxes.tensor, flipped, atol=1e-4, rtol=0)
    assert out["image"].shape[1:] == (128, 128)


def test_crowd_annotations_are_skipped_but_indices_point_into_the_record(dataset):
    record = records("tiny_vertebrae_val", 1)[0]
    record["annotations"][1]["iscrowd"] = 1
    inst = VertFoundDatasetMapper(dataset, is_train=False)(record)["instances"]
    assert 1 not in inst.gt_indices.tolist()
    assert inst.gt_indices.tolist() == [i for i in range(len(record["annotations"])) if i != 1]


@pytest.mark.parametrize("key,value", [("INPUT.RANDOM_FLIP", "horizontal"),
                                       ("INPUT.MIN_SIZE_TRAIN", "(128,)"),
                                       ("MODEL.VERTFOUND.AUG.CROP_MIN", "[0.7, 1.0]")])
def test_geometric_augmentation_with_a_cache_is_refused(key, value):
    cfg = tiny_cfg("MODEL.VERTFOUND.CACHE.PATH", "some_cache.pth", key, value)
    with pytest.raises(ValueError, match="CACHE.PATH"):
        VertFoundDatasetMapper(cfg, is_train=True)
    # photometric augmentation and test-time mapping are fine with a cache
    cfg = tiny_cfg("MODEL.VERTFOUND.CACHE.PATH", "c.pth", "MODEL.VERTFOUND.AUG.BRIGHTNESS",
                   "[0.8, 1.2]")
    assert VertFoundDatasetMapper(cfg, is_train=True).is_train
    VertFoundDatasetMapper(tiny_cfg("MODEL.VERTFOUND.CACHE.PATH", "c.pth"), is_train=False)


def test_vertical_flip_is_refused():
    with pytest.raises(ValueError, match="vertical"):
        VertFoundDatasetMapper(tiny_cfg("INPUT.RANDOM_FLIP", "vertical"), is_train=True)


def test_a_crop_drops_boxes_mostly_outside_and_keeps_indices(dataset):
    record = records("tiny_vertebrae_train", 1)[0]
    anns = record["annotations"]
    top_half = T.CropTransform(0, 0, record["width"], record["height"] // 2)

    class _TopHalf(T.Augmentation):
        def get_transform(self, image):
            return top_half

    mapper = VertFoundDatasetMapper(dataset, is_train=True, augmentations=[_TopHalf()])
    inst = mapper(record)["instances"]
    half = record["height"] // 2
    expected = [i for i, a in enumerate(anns)
                if (min(a["bbox"][3], half) - a["bbox"][1]) >= 0.6 * (a["bbox"][3] - a["bbox"][1])]
    assert 0 < len(expected) < len(anns)
    assert inst.gt_indices.tolist() == expected
    assert inst.gt_classes.tolist() == [anns[i]["category_id"] for i in expected]
    assert float(inst.gt_boxes.tensor[:, 3].max()) <= half


def test_collimation_blanks_bands_keeps_scale_and_drops_hidden_boxes(dataset):
    from vertspine.modeling.vertfound.dataset_mapper import CollimationTransform

    record = records("tiny_vertebrae_train", 1)[0]
    anns = record["annotations"]
    bottom = int(anns[-1]["bbox"][1]) + 2  # hides almost all of the lowest vertebra

    class _Shutter(T.Augmentation):
        def get_transform(self, image):
            return CollimationTransform(0, bottom)

    out = VertFoundDatasetMapper(dataset, is_train=True, augmentations=[_Shutter()])(record)
    assert out["image"].shape == (3, record["height"], record["width"])  # no resize
    assert (out["image"][:, bottom:] == 0).all() and out["image"][:, :bottom].any()
    inst = out["instances"]
    assert len(anns) - 1 not in inst.gt_indices.tolist()
    kept = torch.tensor([a["bbox"] for a in anns])[inst.gt_indices]
    kept[:, 3] = kept[:, 3].clamp(max=bottom)
    torch.testing.assert_close(inst.gt_boxes.tensor, kept)
    with pytest.raises(ValueError, match="CACHE.PATH"):
        VertFoundDatasetMapper(tiny_cfg("MODEL.VERTFOUND.CACHE.PATH", "c.pth",
                                        "MODEL.VERTFOUND.AUG.COLLIMATE", "0.5"), is_train=True)
