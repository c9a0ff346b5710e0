"""The model's NUM_CLASSES must match the dataset's categories."""
import pytest
from detectron2.data import MetadataCatalog

from vertspine.config import get_vertspine_cfg
from vertspine.data import check_num_classes


@pytest.fixture
def seven_class_dataset(tmp_path):
    name = f"class_count_{tmp_path.name}"
    MetadataCatalog.get(name).set(thing_classes=[f"c{i}" for i in range(7)])
    yield name
    MetadataCatalog.remove(name)


@pytest.mark.parametrize("meta_arch, key", [("GeneralizedRCNN", ("ROI_HEADS", "NUM_CLASSES")),
                                            ("RetinaNet", ("RETINANET", "NUM_CLASSES"))])
def test_mismatch_names_dataset_key_and_fix(seven_class_dataset, meta_arch, key):
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE = meta_arch
    cfg.MODEL[key[0]][key[1]] = 80
    message = (f"'{seven_class_dataset}' has 7 classes.*MODEL.{key[0]}.NUM_CLASSES is 80.*"
               f"Set MODEL.{key[0]}.NUM_CLASSES 7")
    with pytest.raises(ValueError, match=message):
        check_num_classes(cfg, [seven_class_dataset])
    cfg.MODEL[key[0]][key[1]] = 7
    check_num_classes(cfg, [seven_class_dataset])  # matching: no error
