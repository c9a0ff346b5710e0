"""verse19_*/verse20_* are registered lazily and fail clearly before conversion."""
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from vertspine.data.builtin_verse import VERSE_DATASET_NAMES, register_verse_datasets
from vertspine.data.phantom import VERTEBRA_LEVELS


def test_import_registers_six_names_with_level_metadata():
    assert VERSE_DATASET_NAMES == ("verse19_train", "verse19_val", "verse19_test",
                                   "verse20_train", "verse20_val", "verse20_test")
    root = os.path.abspath(os.environ.get("VERTSPINE_DATASETS", "datasets"))
    for name in VERSE_DATASET_NAMES:
        release, split = name.split("_")
        metadata = MetadataCatalog.get(name)
        assert name in DatasetCatalog
        assert metadata.evaluator_type == "vertebra_level"
        assert metadata.thing_classes == list(VERTEBRA_LEVELS) == metadata.level_names
        assert metadata.json_file == os.path.join(root, release, "annotations", f"{name}.json")
        assert metadata.image_root == os.path.join(root, release, "images", split)


def test_loading_before_conversion_names_the_json_and_the_command(tmp_path):
    try:
        register_verse_datasets(str(tmp_path))
        expected = os.path.join(str(tmp_path), "verse20", "annotations", "verse20_val.json")
        with pytest.raises(FileNotFoundError) as info:
            DatasetCatalog.get("verse20_val")
        assert expected in str(info.value)
        assert "python tools/convert_verse.py --input <VerSe folder> --name verse20" in str(info.value)
    finally:
        register_verse_datasets()
