"""vindr_spinexr_{train,val,test}: registered at import under $VERTSPINE_DATASETS, lazy, loading
the converter's output; a missing conversion names the json and the command."""
import os

import pytest

import vertspine  # noqa: F401  (first)
from detectron2.data import DatasetCatalog, MetadataCatalog
from vertspine.data.builtin import VINDR_DATASET_NAMES, register_vindr_datasets
from vertspine.data.spine_categories import LESION_CLASSES
from vertspine.data.vindr import ConversionOptions, convert_vindr
from vertspine.data.vindr.convert import default_vindr_root

import vindr_release as release


@pytest.fixture
def registered_at(tmp_path):
    """Register the VinDr names under a temporary root; restore the default root after."""
    root = str(tmp_path / "vindr_spinexr")
    yield root, register_vindr_datasets(root)
    register_vindr_datasets()


def test_import_registers_three_lazy_names_with_the_vindr_evaluator():
    assert VINDR_DATASET_NAMES == ("vindr_spinexr_train", "vindr_spinexr_val", "vindr_spinexr_test")
    root = os.path.abspath(default_vindr_root())
    for name in VINDR_DATASET_NAMES:
        metadata = MetadataCatalog.get(name)
        assert name in DatasetCatalog
        assert metadata.evaluator_type == "vindr"
        assert metadata.thing_classes == list(LESION_CLASSES)
        split = name.split("_")[-1]
        assert metadata.json_file == os.path.join(root, "annotations", f"{split}.json")
    images = os.path.join(root, "images")
    assert MetadataCatalog.get("vindr_spinexr_val").image_root == os.path.join(images, "train")
    assert MetadataCatalog.get("vindr_spinexr_test").image_root == os.path.join(images, "test")


def test_default_root_follows_the_environment(monkeypatch):
    monkeypatch.setenv("VERTSPINE_DATASETS", "/data/sets")
    assert default_vindr_root() == os.path.join("/data/sets", "vindr_spinexr")


def test_unconverted_data_names_the_json_and_the_command(registered_at):
    root, _ = registered_at
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("vindr_spinexr_train")
    message = str(error.value)
    assert os.path.join(root, "annotations", "train.json") in message
    assert "tools/convert_vindr.py --vindr-root" in message and f"--output {root}" in message


def test_converted_data_loads_as_detectron2_records(registered_at, tmp_path):
    root, names = registered_at
    release.write_release(str(tmp_path / "release"))
    convert_vindr(str(tmp_path / "release"), root, ConversionOptions(val_fraction=0.4, seed=3))
    records = {name: DatasetCatalog.get(name) for name in names}
    assert len(records["vindr_spinexr_train"]) + len(records["vindr_spinexr_val"]) == 7
    test = {os.path.basename(r["file_name"]): r for r in records["vindr_spinexr_test"]}
    assert test["imgT2.png"]["annotations"] == []  # normal image kept as a negative
    classes = sorted(a["category_id"] for a in test["imgT1.png"]["annotations"])
    assert classes == [0, 0, 1]  # contiguous ids: Osteophytes x2, Surgical implant
    assert test["imgT1.png"]["height"] == 40 and test["imgT1.png"]["width"] == 32
