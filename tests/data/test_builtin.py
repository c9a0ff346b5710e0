"""Tests of vertspine.data.builtin: the phantom datasets by name, generated on first use."""
import os

import numpy as np
import pytest

import vertspine  # noqa: F401  (makes detectron2 importable)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from vertspine.data.builtin import (
    PHANTOM_DATASET_NAMES,
    default_phantom_root,
    register_phantom_datasets,
    register_phantom_large_train,
)
from vertspine.data import read_image
from vertspine.data.coco_registration import unregister_dataset
from vertspine.data.phantom import (LESION_CLASSES, VERTEBRA_LEVELS, PhantomConfig,
                                    generate_phantom_image)

TINY = PhantomConfig(image_height=96, image_width=96, num_train=6, num_val=3,
                     num_test=2, seed=7)


@pytest.fixture
def registered_at(tmp_path):
    """Register the phantom names on TINY under a temporary root; restore the defaults after."""
    root = str(tmp_path / "phantom")
    yield root, register_phantom_datasets(root, TINY)
    register_phantom_datasets()


def test_import_registers_the_six_names_under_the_default_root():
    assert PHANTOM_DATASET_NAMES == (
        "phantom_vertebrae_train",
        "phantom_vertebrae_val",
        "phantom_vertebrae_test",
        "phantom_lesions_train",
        "phantom_lesions_val",
        "phantom_lesions_test",
    )
    expected_root = os.path.abspath(default_phantom_root())
    for name in PHANTOM_DATASET_NAMES:
        assert name in DatasetCatalog
        metadata = MetadataCatalog.get(name)
        assert metadata.evaluator_type == ("vertebra_level" if "vertebrae" in name else "coco")
        assert metadata.json_file.startswith(expected_root + os.sep)
    assert MetadataCatalog.get("phantom_lesions_val").thing_classes == list(LESION_CLASSES)
    assert MetadataCatalog.get("phantom_vertebrae_train").level_names == list(VERTEBRA_LEVELS)


def test_default_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv("VERTSPINE_DATASETS", "/data/sets")
    assert default_phantom_root() == os.path.join("/data/sets", "phantom")
    monkeypatch.delenv("VERTSPINE_DATASETS")
    assert default_phantom_root() == os.path.join("datasets", "phantom")


def test_loading_generates_the_data_once_and_returns_records(registered_at):
    root, names = registered_at
    assert names == list(PHANTOM_DATASET_NAMES) and not os.path.exists(root)
    lesions = DatasetCatalog.get("phantom_lesions_train")
    assert os.path.isfile(os.path.join(root, "phantom_manifest.json"))
    assert len(lesions) == TINY.num_train  # normal images are kept as negatives
    assert all(r["height"] == r["width"] == 96 for r in lesions)
    manifest_mtime = os.stat(os.path.join(root, "phantom_manifest.json")).st_mtime_ns
    vertebrae = DatasetCatalog.get("phantom_vertebrae_val")
    assert os.stat(os.path.join(root, "phantom_manifest.json")).st_mtime_ns == manifest_mtime
    assert len(vertebrae) == TINY.num_val
    assert len(DatasetCatalog.get("phantom_lesions_test")) == TINY.num_test
    annotation = vertebrae[0]["annotations"][0]
    assert annotation["bbox_mode"] == BoxMode.XYXY_ABS and annotation["segmentation"]
    assert 0 <= annotation["category_id"] < len(VERTEBRA_LEVELS)
    assert MetadataCatalog.get("phantom_vertebrae_val").thing_classes == list(VERTEBRA_LEVELS)


def test_registering_again_with_another_root_replaces_the_entries(registered_at, tmp_path):
    root, _ = registered_at
    other = str(tmp_path / "other")
    register_phantom_datasets(other, TINY)
    register_phantom_datasets(other, TINY)  # same again: no error
    assert MetadataCatalog.get("phantom_lesions_val").json_file.startswith(os.path.abspath(other))
    assert len(DatasetCatalog.get("phantom_lesions_val")) == TINY.num_val
    assert os.path.isdir(other) and not os.path.exists(root)


def test_large_train_extends_the_train_split_with_the_same_first_images(tmp_path):
    root = str(tmp_path / "phantom_train_3")
    try:
        names = register_phantom_large_train(root, num_train=3)
        assert names == ["phantom_vertebrae_train_3", "phantom_lesions_train_3"]
        records = DatasetCatalog.get("phantom_vertebrae_train_3")
        assert len(records) == 3
        assert MetadataCatalog.get("phantom_vertebrae_train_3").evaluator_type == "vertebra_level"
        image, vertebrae, _ = generate_phantom_image(PhantomConfig(), "train", 2)
        np.testing.assert_array_equal(read_image(records[2]["file_name"], format="L")[..., 0],
                                      image)
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                 for a in records[2]["annotations"]]
        np.testing.assert_allclose(boxes, [v["bbox"] for v in vertebrae], atol=1e-6)
    finally:
        for name in ("phantom_vertebrae_train_3", "phantom_lesions_train_3"):
            unregister_dataset(name, missing_ok=True)
    assert "phantom_vertebrae_train_1000" in DatasetCatalog
