"""Image/mask folder segmentation datasets, their mapper and the phantom vertebra masks."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from pycocotools.coco import COCO

from vertspine.config import get_vertspine_cfg
from vertspine.data import (
    MAPPER_REGISTRY,
    SemSegDatasetMapper,
    build_dataset_mapper,
    read_label_mask,
    register_image_mask_folders,
    unregister_dataset,
)
from vertspine.data.builtin import default_phantom_root
from vertspine.data.phantom import PhantomConfig
from vertspine.data.phantom_spine_seg import PHANTOM_SPINE_SEG_NAMES, register_phantom_spine_seg


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array)


@pytest.fixture
def folders(tmp_path):
    """Two images (a PNG, and a JPEG whose mask is a PNG) with 0/1/2 masks."""
    rng = np.random.default_rng(0)
    images, masks = str(tmp_path / "images"), str(tmp_path / "masks")
    _write(os.path.join(images, "a.png"), rng.integers(0, 255, (40, 60, 3), dtype=np.uint8))
    _write(os.path.join(images, "b.jpg"), rng.integers(0, 255, (30, 20, 3), dtype=np.uint8))
    mask_a = np.zeros((40, 60), np.uint8)
    mask_a[5:20, 10:30], mask_a[25:35, 40:50] = 1, 2
    _write(os.path.join(masks, "a.png"), mask_a)
    _write(os.path.join(masks, "b.png"), np.zeros((30, 20), np.uint8))
    names = []
    yield {"images": images, "masks": masks, "mask_a": mask_a, "names": names}
    for name in names:
        unregister_dataset(name)


def _register(folders, name, **kwargs):
    folders["names"].append(name)
    register_image_mask_folders(name, folders["images"], folders["masks"], ["disc", "body"],
                                **kwargs)


def test_records_and_metadata(folders):
    _register(folders, "seg_ok")
    records = DatasetCatalog.get("seg_ok")
    assert [os.path.basename(r["file_name"]) for r in records] == ["a.png", "b.jpg"]
    assert os.path.basename(records[1]["sem_seg_file_name"]) == "b.png"
    assert (records[0]["height"], records[0]["width"]) == (40, 60)
    assert records[0]["sem_seg_encoding"] == {"mask_values": [0, 1, 2], "ignore_value": None}
    meta = MetadataCatalog.get("seg_ok")
    assert meta.stuff_classes == ["background", "disc", "body"]
    assert meta.thing_classes == ["disc", "body"] and meta.evaluator_type == "sem_seg_dice"


def test_missing_mask_and_size_mismatch_name_the_files(folders):
    os.remove(os.path.join(folders["masks"], "b.png"))
    _register(folders, "seg_missing")
    with pytest.raises(FileNotFoundError, match=r"1 of 2 images .* no mask .*\['b.jpg'\]"):
        DatasetCatalog.get("seg_missing")
    _write(os.path.join(folders["masks"], "b.png"), np.zeros((31, 20), np.uint8))
    with pytest.raises(ValueError, match=r"b.jpg \(image 30x20, mask 31x20\)"):
        DatasetCatalog.get("seg_missing")


def test_mask_values_are_mapped_and_checked(folders, tmp_path):
    binary = np.where(folders["mask_a"] > 0, 255, 0).astype(np.uint8)
    binary[0, 0] = 7
    path = str(tmp_path / "binary.png")
    _write(path, binary)
    labels = read_label_mask(path, [0, 255], ignore_value=7)
    assert labels[0, 0] == 255 and labels[10, 15] == 1 and labels[1, 1] == 0
    with pytest.raises(ValueError, match=r"pixel values \[7\] .*mask_values \[0, 255\]"):
        read_label_mask(path, [0, 255])
    _write(str(tmp_path / "rgb.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="single-channel"):
        read_label_mask(str(tmp_path / "rgb.png"), [0, 1])
    with pytest.raises(ValueError, match="3 distinct pixel values"):
        register_image_mask_folders("seg_bad", folders["images"], folders["masks"], ["a", "b"],
                                    mask_values=[0, 1])


def test_mapper_is_deterministic_and_resizes_keeping_aspect(folders):
    _register(folders, "seg_map")
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "SemSegDatasetMapper"
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 20, 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    assert MAPPER_REGISTRY.get("SemSegDatasetMapper") is SemSegDatasetMapper
    record = DatasetCatalog.get("seg_map")[0]
    train = build_dataset_mapper(cfg, is_train=True)(record)
    test = build_dataset_mapper(cfg, is_train=False)(record)
    assert list(train["image"].shape) == [3, 20, 30]  # short side 40 -> 20, aspect kept
    torch.testing.assert_close(train["image"], test["image"])
    # test time: ground truth at the original mask resolution, the frame of the prediction
    assert torch.equal(test["sem_seg"], torch.as_tensor(folders["mask_a"], dtype=torch.int64))
    expected = cv2.resize(folders["mask_a"], (30, 20), interpolation=cv2.INTER_NEAREST)
    assert (train["sem_seg"].numpy() == expected).mean() > 0.95  # nearest: labels stay labels
    assert set(train["sem_seg"].unique().tolist()) == {0, 1, 2}
    assert (test["height"], test["width"]) == (40, 60) and "sem_seg_file_name" in test


@pytest.fixture
def tiny_spine_seg(tmp_path):
    root = str(tmp_path / "phantom")
    names = register_phantom_spine_seg(root, PhantomConfig(image_height=96, image_width=96,
                                                           num_train=3, num_val=2, num_test=1,
                                                           seed=5))
    yield root, names
    register_phantom_spine_seg(default_phantom_root())


def test_phantom_spine_masks_equal_the_coco_polygons(tiny_spine_seg):
    root, names = tiny_spine_seg
    assert names == list(PHANTOM_SPINE_SEG_NAMES)
    assert names == ["phantom_spine_seg_train", "phantom_spine_seg_val",
                     "phantom_spine_seg_test"]
    records = DatasetCatalog.get("phantom_spine_seg_val")
    assert len(records) == 2
    coco = COCO(os.path.join(root, "annotations", "vertebrae_val.json"))
    for record in records:
        image = next(i for i in coco.dataset["images"]
                     if i["file_name"] == os.path.basename(record["file_name"]))
        union = np.zeros((96, 96), bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image["id"]])):
            union |= coco.annToMask(ann).astype(bool)
        labels = read_label_mask(record["sem_seg_file_name"], [0, 255])
        assert union.any() and np.array_equal(labels == 1, union)
    manifest = os.path.join(root, "masks", "vertebra_val_manifest.json")
    stamp = os.stat(records[0]["sem_seg_file_name"]).st_mtime_ns
    DatasetCatalog.get("phantom_spine_seg_val")  # second load: masks are not rewritten
    assert os.stat(records[0]["sem_seg_file_name"]).st_mtime_ns == stamp
    with open(manifest) as f:
        assert json.load(f)["source"] == "vertebrae_val.json"
    assert MetadataCatalog.get("phantom_spine_seg_val").mask_values == [0, 255]
