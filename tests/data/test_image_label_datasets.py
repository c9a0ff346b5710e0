"""Classification datasets: ImageFolder registration, views of detection datasets (phantom
abnormal-vs-normal, VinDr's "abnormal" field) and the class-count check of ImageClassifier."""
import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from vertspine.config import get_vertspine_cfg
from vertspine.data import (
    DatasetValidationError,
    check_num_classes,
    dataset_split,
    register_classification_view,
    register_coco_dataset,
    register_image_folder,
    unregister_dataset,
)
from vertspine.data.builtin_classification import (
    CLASSIFICATION_DATASET_NAMES,
    export_abnormal_image_folder,
    label_abnormal_field,
    label_any_annotation,
)


@pytest.fixture
def names():
    registered = []
    yield registered
    for name in registered:
        if name in DatasetCatalog:
            unregister_dataset(name)


def _png(path, size=(12, 10)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.zeros(size[::-1], np.uint8)).save(path)


def test_image_folder_sorted_classes_and_labels(tmp_path, names):
    for cls, count in (("tumor", 2), ("glioma", 1), ("normal", 3)):
        for i in range(count):
            _png(str(tmp_path / cls / f"{i}.png"))
    names.append("folder_cls_train")
    assert register_image_folder("folder_cls_train", str(tmp_path)) == ["glioma", "normal", "tumor"]
    records = DatasetCatalog.get("folder_cls_train")
    assert [r["label"] for r in records] == [0, 1, 1, 1, 2, 2]
    assert records[0]["image_id"] == "glioma/0.png" and records[0]["height"] == 10
    metadata = MetadataCatalog.get("folder_cls_train")
    assert metadata.thing_classes == ["glioma", "normal", "tumor"]
    assert metadata.evaluator_type == "classification"
    assert dataset_split("folder_cls_train") == "train"


def test_image_folder_with_a_given_class_order(tmp_path, names):
    for cls in ("abnormal", "normal"):
        _png(str(tmp_path / cls / "0.png"))
    names.append("folder_order_val")
    assert register_image_folder("folder_order_val", str(tmp_path),
                                 classes=["normal", "abnormal"]) == ["normal", "abnormal"]
    labels = {r["image_id"]: r["label"] for r in DatasetCatalog.get("folder_order_val")}
    assert labels == {"normal/0.png": 0, "abnormal/0.png": 1}
    with pytest.raises(DatasetValidationError, match=r"sub-folders are \['abnormal', 'normal'\]"):
        register_image_folder("folder_order_bad", str(tmp_path), classes=["normal", "tumor"])


def test_image_folder_errors_name_the_problem(tmp_path, names):
    with pytest.raises(DatasetValidationError, match="does not exist"):
        register_image_folder("folder_missing", str(tmp_path / "nothing"))
    _png(str(tmp_path / "a" / "0.png"))
    os.makedirs(tmp_path / "b")
    names.append("folder_empty")
    register_image_folder("folder_empty", str(tmp_path))
    with pytest.raises(DatasetValidationError, match=r"\['b'\].*hold no images"):
        DatasetCatalog.get("folder_empty")
    (tmp_path / "b" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetValidationError, match="1 files cannot be read.*broken.png"):
        DatasetCatalog.get("folder_empty")


def _coco(tmp_path, images, annotations):
    for image in images:
        _png(str(tmp_path / image["file_name"]), (image["width"], image["height"]))
    path = str(tmp_path / "data.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations,
                   "categories": [{"id": 1, "name": "lesion"}]}, f)
    return path


def _images(abnormal):
    return [{"id": i + 1, "file_name": f"{i}.png", "width": 12, "height": 10,
             **({} if a is None else {"abnormal": a})} for i, a in enumerate(abnormal)]


def test_views_label_by_annotations_or_by_the_abnormal_field(tmp_path, names):
    box = {"category_id": 1, "bbox": [1, 1, 4, 4]}
    json_file = _coco(tmp_path, _images([1, 0, 1]), [{"id": 1, "image_id": 1, **box}])
    names += ["view_src", "view_any_val", "view_field_test"]
    register_coco_dataset("view_src", json_file, str(tmp_path))
    register_classification_view("view_any_val", "view_src", label_any_annotation,
                                 ["normal", "abnormal"])
    register_classification_view("view_field_test", "view_src", label_abnormal_field,
                                 ["normal", "abnormal"])
    assert [r["label"] for r in DatasetCatalog.get("view_any_val")] == [1, 0, 0]
    field = DatasetCatalog.get("view_field_test")
    assert [r["label"] for r in field] == [1, 0, 1]  # image 3: abnormal without a box
    assert set(field[0]) == {"file_name", "image_id", "height", "width", "label"}
    assert dataset_split("view_any_val") == "val" and dataset_split("view_field_test") == "test"


def test_missing_abnormal_field_and_missing_source_are_errors(tmp_path, names):
    json_file = _coco(tmp_path, _images([1, None]), [])
    names += ["nofield_src", "nofield_view", "orphan_view"]
    register_coco_dataset("nofield_src", json_file, str(tmp_path))
    register_classification_view("nofield_view", "nofield_src", label_abnormal_field, ["n", "a"])
    with pytest.raises(ValueError, match="abnormal=None.*re-run the converter"):
        DatasetCatalog.get("nofield_view")
    register_classification_view("orphan_view", "no_such_dataset", label_any_annotation, ["n", "a"])
    with pytest.raises(KeyError, match="no_such_dataset"):
        DatasetCatalog.get("orphan_view")


def test_builtin_views_are_registered():
    assert set(CLASSIFICATION_DATASET_NAMES) == {
        "phantom_abnormal_train", "phantom_abnormal_val", "phantom_abnormal_test",
        "vindr_spinexr_cls_train",
        "vindr_spinexr_cls_val", "vindr_spinexr_cls_test"}
    for name in CLASSIFICATION_DATASET_NAMES:
        metadata = MetadataCatalog.get(name)
        assert metadata.thing_classes == ["normal", "abnormal"]
        assert metadata.evaluator_type == "classification"
    assert MetadataCatalog.get("phantom_abnormal_val").source_dataset == "phantom_lesions_val"


def test_export_abnormal_image_folder(tiny_phantom, tmp_path):
    root = tiny_phantom["root"]
    json_file = os.path.join(root, "annotations", "lesions_train.json")
    counts = export_abnormal_image_folder(json_file, os.path.join(root, "images", "train"),
                                          str(tmp_path / "folder"))
    raw = json.load(open(json_file))
    annotated = {a["image_id"] for a in raw["annotations"]}
    assert counts == {"normal": len(raw["images"]) - len(annotated), "abnormal": len(annotated)}
    assert len(os.listdir(tmp_path / "folder" / "abnormal")) == len(annotated)


@pytest.mark.parametrize("num_classes, classes, raises", [
    (1, ["normal", "abnormal"], False),   # binary: one logit, two names
    (2, ["normal", "abnormal"], False),
    (3, ["normal", "abnormal"], True),
    (1, ["a", "b", "c"], True),
])
def test_class_count_check_of_image_classifiers(tmp_path, num_classes, classes, raises):
    name = f"count_{tmp_path.name}"
    MetadataCatalog.get(name).set(thing_classes=classes, evaluator_type="classification")
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.IMAGE_CLASSIFIER.NUM_CLASSES = num_classes
    try:
        if raises:
            with pytest.raises(ValueError, match="MODEL.IMAGE_CLASSIFIER.NUM_CLASSES"):
                check_num_classes(cfg, [name])
        else:
            check_num_classes(cfg, [name])
        detection = f"{name}_det"  # a detection dataset read as abnormal-vs-normal: not checked
        MetadataCatalog.get(detection).set(thing_classes=list("abcdefg"), evaluator_type="coco")
        check_num_classes(cfg, [detection])
    finally:
        MetadataCatalog.remove(name)
        MetadataCatalog.remove(f"{name}_det")
