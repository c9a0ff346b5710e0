"""Tests of vertspine.data.coco_registration: validated, named COCO-json datasets."""
import json
import logging
import os
import re
import uuid

import pytest

import vertspine  # noqa: F401  (makes detectron2 importable)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from vertspine.config import get_vertspine_cfg
from vertspine.data.coco_registration import (
    DatasetValidationError,
    register_coco_dataset,
    register_datasets_from_config,
    unregister_dataset,
)

W, H = 48, 32
LOGGER = "vertspine.data.coco_validation"


def coco_dict():
    """A valid 3-image json: image 3 has no annotations (a negative)."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H},
            {"id": 2, "file_name": "sub/b.png", "width": W, "height": H},
            {"id": 3, "file_name": "c.png", "width": W, "height": H},
        ],
        "categories": [{"id": 1, "name": "vertebra"}, {"id": 2, "name": "disc"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {
                "id": 11,
                "image_id": 2,
                "category_id": 2,
                "bbox": [4, 4, 20, 10],
                "iscrowd": 0,
                "segmentation": [[4, 4, 24, 4, 24, 14, 4, 14]],
            },
        ],
    }


def write_dataset(root, coco, name="train.json"):
    """Write ``coco`` as json and an (empty) file per image; return (json_file, image_root)."""
    image_root = root / "images"
    for image in coco["images"]:
        path = image_root / image["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    json_file = root / name
    json_file.write_text(json.dumps(coco))
    return str(json_file), str(image_root)


@pytest.fixture
def name():
    """A fresh dataset name, unregistered afterwards."""
    dataset_name = f"test_spine_{uuid.uuid4().hex[:8]}"
    yield dataset_name
    if dataset_name in DatasetCatalog:
        unregister_dataset(dataset_name)


def load(tmp_path, name, coco, **kwargs):
    """Register ``coco`` under ``name`` and load it."""
    json_file, image_root = write_dataset(tmp_path, coco)
    register_coco_dataset(name, json_file, image_root, **kwargs)
    return DatasetCatalog.get(name)


def boxes_by_image(records):
    return {r["image_id"]: [a["bbox"] for a in r["annotations"]] for r in records}


def test_valid_json_round_trips(tmp_path, name, caplog):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    register_coco_dataset(name, json_file, image_root, num_classes=2)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = DatasetCatalog.get(name)
    assert [r["image_id"] for r in records] == [1, 2, 3]
    first, second, negative = records
    assert first["file_name"] == os.path.join(image_root, "a.png") and os.path.isabs(
        first["file_name"]
    )
    assert (first["height"], first["width"]) == (H, W)
    assert first["annotations"] == [
        {"iscrowd": 0, "bbox": [2.0, 3.0, 12.0, 8.0], "category_id": 0,
         "bbox_mode": BoxMode.XYXY_ABS}
    ]
    assert second["annotations"][0]["category_id"] == 1
    assert second["annotations"][0]["bbox"] == [4.0, 4.0, 24.0, 14.0]
    assert second["annotations"][0]["segmentation"] == [[4, 4, 24, 4, 24, 14, 4, 14]]
    assert negative["annotations"] == []
    assert "1 of 3 images have no annotations" in caplog.text
    meta = MetadataCatalog.get(name)
    assert meta.thing_classes == ["vertebra", "disc"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}
    assert (meta.json_file, meta.image_root, meta.evaluator_type) == (json_file, image_root, "coco")


def test_zero_based_and_unsorted_category_ids(tmp_path, name, caplog):
    coco = coco_dict()
    coco["categories"] = [{"id": 1, "name": "disc"}, {"id": 0, "name": "vertebra"}]
    coco["annotations"][0]["category_id"] = 0
    coco["annotations"][1]["category_id"] = 1
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = load(tmp_path, name, coco)
    assert [r["annotations"][0]["category_id"] for r in records[:2]] == [0, 1]
    assert MetadataCatalog.get(name).thing_classes == ["vertebra", "disc"]
    assert "category ids [0, 1] are not 1..2" in caplog.text


def test_extra_metadata_and_matching_thing_classes(tmp_path, name):
    load(tmp_path, name, coco_dict(), thing_classes=("vertebra", "disc"), evaluator_type="spine")
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "spine" and meta.thing_classes == ["vertebra", "disc"]


def test_thing_classes_mismatch(tmp_path, name):
    with pytest.raises(DatasetValidationError, match=r"train.json.*\['vertebra', 'disc'\]"):
        load(tmp_path, name, coco_dict(), thing_classes=["disc", "vertebra"])


def test_num_classes_mismatch(tmp_path, name):
    with pytest.raises(DatasetValidationError) as e:
        load(tmp_path, name, coco_dict(), num_classes=3)
    message = str(e.value)
    assert "train.json has 2 categories ['vertebra', 'disc']" in message
    assert "config has 3 classes" in message
    assert "MODEL.ROI_HEADS.NUM_CLASSES" in message and "set it to 2" in message


def bad(mutate):
    """A valid json changed by ``mutate``."""
    coco = coco_dict()
    mutate(coco)
    return coco


@pytest.mark.parametrize(
    "coco, expected",
    [
        (bad(lambda c: c["categories"].append({"id": 2, "name": "x"})),
         "1 category ids are not unique: 2"),
        (bad(lambda c: c["categories"].clear()), "has no categories"),
        (bad(lambda c: c["annotations"][0].update(category_id=7)),
         "annotation id 10 -> category_id 7"),
        (bad(lambda c: c["images"][1].update(id=1)), "1 image ids are not unique: 1"),
        (bad(lambda c: c["annotations"][1].update(id=10)), "1 annotation ids are not unique: 10"),
        (bad(lambda c: c["annotations"][1].update(image_id=99)),
         "annotation id 11 -> image_id 99"),
        (bad(lambda c: c["images"][1].pop("width")), r"image id 2 \(sub/b.png\)"),
        (bad(lambda c: c["annotations"][0].update(bbox=[1, 2, float("nan"), 4])),
         "4 finite numbers.*annotation id 10: bbox"),
        (bad(lambda c: c["annotations"][0].update(bbox=[1, 2, float("inf"), 4])),
         "annotation id 10: bbox"),
        (bad(lambda c: c["annotations"][0].pop("bbox")), "annotation id 10: bbox None"),
    ],
)
def test_invalid_json_records(tmp_path, name, coco, expected):
    with pytest.raises(DatasetValidationError) as e:
        load(tmp_path, name, coco)
    assert str(e.value).startswith(str(tmp_path / "train.json"))
    assert re.search(expected, str(e.value))


def test_error_names_the_json_file(tmp_path, name):
    with pytest.raises(DatasetValidationError) as e:
        load(tmp_path, name, bad(lambda c: c["annotations"][0].update(category_id=7)))
    assert str(e.value).startswith(str(tmp_path / "train.json"))
    assert "categories [1, 2]" in str(e.value) and "Fix:" in str(e.value)


def test_missing_image_files(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    os.remove(os.path.join(image_root, "sub", "b.png"))
    os.remove(os.path.join(image_root, "c.png"))
    register_coco_dataset(name, json_file, image_root)
    with pytest.raises(DatasetValidationError) as e:
        DatasetCatalog.get(name)
    message = str(e.value)
    assert "2 image files are missing" in message
    assert os.path.join(image_root, "sub", "b.png") in message
    assert os.path.join(image_root, "c.png") in message


def test_missing_image_files_not_checked_when_disabled(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    os.remove(os.path.join(image_root, "c.png"))
    register_coco_dataset(name, json_file, image_root, check_images=False)
    assert len(DatasetCatalog.get(name)) == 3


@pytest.mark.parametrize(
    "bbox, warning, kept",
    [
        ([5, 5, 0, 4], "1 annotation boxes have zero or negative width/height: skipped", []),
        ([5, 5, 3, -1], "1 annotation boxes have zero or negative width/height", []),
        ([100, 5, 10, 5], "1 annotation boxes lie entirely outside their image: skipped", []),
        ([-20, 5, 10, 5], "1 annotation boxes lie entirely outside", []),
        ([40, 20, 20, 20], "1 annotation boxes extend more than 1 px outside their image: "
         "clipped", [[40.0, 20.0, 48.0, 32.0]]),
        ([-3, -2, 10, 10], "clipped to it", [[0.0, 0.0, 7.0, 8.0]]),
        ([-0.5, 0, 10, 32.5], None, [[0.0, 0.0, 9.5, 32.0]]),  # within tolerance: silent
    ],
)
def test_box_fixes(tmp_path, name, caplog, bbox, warning, kept):
    coco = bad(lambda c: c["annotations"][0].update(bbox=bbox))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        records = load(tmp_path, name, coco)
    assert boxes_by_image(records) == {1: kept, 2: [[4.0, 4.0, 24.0, 14.0]], 3: []}
    warnings = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    if warning is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and warning in warnings[0]
        assert "annotation ids 10)" in warnings[0] and "train.json" in warnings[0]


def test_box_warning_counts_and_lists_first_ids(tmp_path, name, caplog):
    coco = coco_dict()
    coco["annotations"] = [
        {"id": 100 + i, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 1], "iscrowd": 0}
        for i in range(7)
    ]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        records = load(tmp_path, name, coco)
    assert all(r["annotations"] == [] for r in records)
    assert "7 annotation boxes have zero" in caplog.text
    assert "annotation ids 100, 101, 102, 103, 104, ...)" in caplog.text


def test_invalid_json_text(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    with open(json_file, "w") as f:
        f.write("{not json")
    register_coco_dataset(name, json_file, image_root)
    with pytest.raises(DatasetValidationError, match="train.json is not valid JSON"):
        DatasetCatalog.get(name)


def test_registration_is_lazy_and_prepare_runs_once_before_loading(tmp_path, name):
    calls = []

    def prepare():
        calls.append(os.path.exists(tmp_path / "train.json"))
        write_dataset(tmp_path, coco_dict())

    register_coco_dataset(
        name, str(tmp_path / "train.json"), str(tmp_path / "images"), prepare=prepare
    )
    assert calls == [] and name in DatasetCatalog
    assert len(DatasetCatalog.get(name)) == 3
    assert len(DatasetCatalog.get(name)) == 3
    assert calls == [False]


def test_same_arguments_reregister_is_noop(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    for _ in range(2):
        register_coco_dataset(
            name, json_file, image_root, num_classes=2, thing_classes=["vertebra", "disc"]
        )
    assert len(DatasetCatalog.get(name)) == 3


def test_different_arguments_reregister_raises(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    other_json, _ = write_dataset(tmp_path, coco_dict(), name="other.json")
    register_coco_dataset(name, json_file, image_root)
    with pytest.raises(ValueError) as e:
        register_coco_dataset(name, other_json, image_root)
    message = str(e.value)
    assert f"Dataset '{name}'" in message and json_file in message and other_json in message
    assert f"unregister_dataset('{name}')" in message and "new dataset name" in message
    assert "json_file" in message.split("differing in:")[1]
    with pytest.raises(ValueError, match="differing in: num_classes"):
        register_coco_dataset(name, json_file, image_root, num_classes=2)

    unregister_dataset(name)
    assert name not in DatasetCatalog and name not in MetadataCatalog.list()
    register_coco_dataset(name, other_json, image_root)
    assert MetadataCatalog.get(name).json_file == other_json


def test_name_registered_by_other_code(name):
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(ValueError, match=f"'{name}' is already registered by other code"):
        register_coco_dataset(name, "x.json", "images")


def test_unregister_unknown_name():
    with pytest.raises(KeyError, match="not_a_dataset_xyz"):
        unregister_dataset("not_a_dataset_xyz")
    unregister_dataset("not_a_dataset_xyz", missing_ok=True)  # a re-registration's first step
    assert "not_a_dataset_xyz" not in DatasetCatalog


def test_register_datasets_from_config(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    cfg = get_vertspine_cfg()
    cfg.DATASETS.COCO_JSON = [[name, json_file, image_root]]
    cfg.DATASETS.COCO_NUM_CLASSES = 2
    assert register_datasets_from_config(cfg) == [name]
    assert len(DatasetCatalog.get(name)) == 3
    assert register_datasets_from_config(cfg) == [name]  # same arguments: no-op


def test_register_datasets_from_config_checks_num_classes(tmp_path, name):
    json_file, image_root = write_dataset(tmp_path, coco_dict())
    cfg = get_vertspine_cfg()
    cfg.DATASETS.COCO_JSON = [[name, json_file, image_root]]
    cfg.DATASETS.COCO_NUM_CLASSES = 5
    register_datasets_from_config(cfg)
    with pytest.raises(DatasetValidationError, match="set it to 2"):
        DatasetCatalog.get(name)


def test_register_datasets_from_config_bad_entry(name):
    cfg = get_vertspine_cfg()
    cfg.DATASETS.COCO_JSON = [[name, "train.json"]]
    with pytest.raises(ValueError, match=r"\[name, json_file, image_root\]") as e:
        register_datasets_from_config(cfg)
    assert name in str(e.value) and name not in DatasetCatalog
