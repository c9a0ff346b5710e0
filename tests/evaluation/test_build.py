"""The evaluator comes from the dataset's evaluator_type metadata."""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator

from vertspine.config import get_vertspine_cfg
from vertspine.evaluation import build_evaluator, register_evaluator, registered_evaluator_types


@pytest.fixture
def dataset_name(tmp_path):
    name = f"evaluator_test_{tmp_path.name}"
    DatasetCatalog.register(name, lambda: [])
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_coco_evaluator_uses_pycocotools_without_compiled_ops(dataset_name, tmp_path):
    from vertspine.utils.compiled_ops import has_compiled_ops

    json_file = tmp_path / "empty.json"
    json_file.write_text('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
    MetadataCatalog.get(dataset_name).set(evaluator_type="coco", json_file=str(json_file))
    evaluator = build_evaluator(get_vertspine_cfg(), dataset_name, str(tmp_path))
    assert isinstance(evaluator, COCOEvaluator)
    assert evaluator._use_fast_impl is has_compiled_ops()
    assert evaluator._tasks == ("bbox",)


def test_missing_and_unknown_evaluator_type_are_named(dataset_name, tmp_path):
    cfg = get_vertspine_cfg()
    with pytest.raises(ValueError, match=f"'{dataset_name}' has no 'evaluator_type'.*coco"):
        build_evaluator(cfg, dataset_name, str(tmp_path))
    MetadataCatalog.get(dataset_name).set(evaluator_type="vertebra_levels_typo")
    with pytest.raises(ValueError, match="'vertebra_levels_typo'.*known: .*coco"):
        build_evaluator(cfg, dataset_name, str(tmp_path))


def test_families_register_new_evaluator_types():
    assert "coco" in registered_evaluator_types()
    with pytest.raises(ValueError, match="already registered for 'coco'"):
        register_evaluator("coco")(lambda cfg, name, folder: None)


def test_coco_ap_nan_from_no_detections_is_explained(dataset_name, tmp_path, caplog):
    import torch
    from detectron2.structures import Boxes, Instances

    json_file = tmp_path / "one_image.json"
    json_file.write_text('{"images": [{"id": 1, "file_name": "1.png", "height": 10, "width": 10}],'
                         ' "annotations": [], "categories": [{"id": 1, "name": "a"}]}')
    MetadataCatalog.get(dataset_name).set(evaluator_type="coco", json_file=str(json_file),
                                          thing_dataset_id_to_contiguous_id={1: 0})
    evaluator = build_evaluator(get_vertspine_cfg(), dataset_name, str(tmp_path))
    evaluator.reset()
    nothing = Instances((10, 10), pred_boxes=Boxes(torch.zeros(0, 4)), scores=torch.zeros(0),
                        pred_classes=torch.zeros(0, dtype=torch.int64))
    evaluator.process([{"image_id": 1}], [{"instances": nothing}])
    with caplog.at_level("WARNING", logger="vertspine"):
        results = evaluator.evaluate()
    assert results["bbox"]["AP"] != results["bbox"]["AP"]  # nan
    assert (f"AP is nan on {dataset_name}: the detector produced no detections above the score "
            "threshold (MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.05)") in caplog.text


def test_score_threshold_setting_names_the_architectures_key():
    from vertspine.evaluation.build import score_threshold_setting
    from vertspine.modeling.sparse_rcnn.config import add_sparse_rcnn_config

    cfg = get_vertspine_cfg()
    assert score_threshold_setting(cfg) == "MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.05"
    cfg.MODEL.META_ARCHITECTURE = "RetinaNet"
    assert score_threshold_setting(cfg) == "MODEL.RETINANET.SCORE_THRESH_TEST 0.05"
    cfg.MODEL.META_ARCHITECTURE = "SparseRCNN"
    if "SPARSE_RCNN" not in cfg.MODEL:
        add_sparse_rcnn_config(cfg)
    assert score_threshold_setting(cfg) == "MODEL.SPARSE_RCNN.SCORE_THRESH_TEST 0.0"
