"""The "vindr" evaluator on hand-made ground truth and predictions whose APs are known, and
parity with plain pycocotools COCOeval on the same json."""
import contextlib
import io
import json
import math
import os

import numpy as np
import pytest
import torch

import vertspine  # noqa: F401  (first)
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from vertspine.data import register_coco_dataset, unregister_dataset
from vertspine.evaluation import build_evaluator, registered_evaluator_types
from vertspine.evaluation.vindr import VINDR_IOU_THRESHOLDS, VinDrEvaluator

CLASSES = ["A", "B", "C"]  # C has no ground truth
GT = {  # image id -> [(category id, XYXY)]
    1: [(1, [10, 10, 50, 50]), (1, [60, 60, 90, 90])],
    2: [(2, [10, 10, 40, 40])],
}
PREDICTIONS = {  # image id -> [(contiguous class, XYXY, score)]
    1: [(0, [10, 10, 50, 50], 0.9),    # exact: TP at every IoU
        (0, [48, 60, 78, 90], 0.8)],   # IoU 540/1260 = 0.4286 with [60, 60, 90, 90]
    2: [(1, [60, 60, 90, 90], 0.95),   # FP ranked first
        (1, [10, 10, 40, 40], 0.5)],   # exact
}
# By hand (101 recall points, interpolated precision):
# A: IoU <= 0.4 both TP -> AP 1; IoU >= 0.45 one TP of 2 GT at precision 1 -> 51/101.
# B: FP then TP -> precision 1/2 at recall 1 -> 0.5 at every recall point and IoU.
AP50_A, AP50_B = 51 / 101 * 100, 50.0
VINDR_A = (5 * 1.0 + 2 * 51 / 101) / 7 * 100  # thresholds 0.2 .. 0.4 vs 0.45, 0.5
VINDR_B = 50.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vindr_eval")
    images = [{"id": i, "file_name": f"{i}.png", "height": 100, "width": 100} for i in GT]
    annotations = [
        {"id": n, "image_id": image_id, "category_id": c,
         "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1]),
         "iscrowd": 0}
        for n, (image_id, c, b) in enumerate(
            ((i, c, b) for i, boxes in GT.items() for c, b in boxes), start=1)
    ]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)]
    json_file = str(folder / "gt.json")
    with open(json_file, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    name = "test_vindr_eval_gt"
    register_coco_dataset(name, json_file, str(folder), check_images=False,
                          thing_classes=CLASSES, evaluator_type="vindr")
    DatasetCatalog.get(name)  # sets thing_dataset_id_to_contiguous_id
    yield {"name": name, "json": json_file, "output": str(folder / "inference")}
    unregister_dataset(name)


def _evaluate(name, output_dir, predictions=PREDICTIONS):
    evaluator = VinDrEvaluator(name, output_dir=output_dir, distributed=False)
    evaluator.reset()
    for image_id, rows in predictions.items():
        instances = Instances((100, 100))
        boxes = torch.tensor([r[1] for r in rows], dtype=torch.float32).reshape(-1, 4)
        instances.pred_boxes = Boxes(boxes)
        instances.scores = torch.tensor([r[2] for r in rows], dtype=torch.float32)
        instances.pred_classes = torch.tensor([r[0] for r in rows], dtype=torch.int64)
        evaluator.process([{"image_id": image_id}], [{"instances": instances}])
    return evaluator.evaluate()["bbox"]


def test_known_numbers(dataset):
    bbox = _evaluate(dataset["name"], dataset["output"])
    assert bbox["AP50-A"] == pytest.approx(AP50_A)
    assert bbox["AP50-B"] == pytest.approx(AP50_B)
    assert math.isnan(bbox["AP50-C"]) and math.isnan(bbox["vindr_AP20-50-C"])
    assert bbox["AP50"] == pytest.approx((AP50_A + AP50_B) / 2)
    assert bbox["AP"] == pytest.approx((AP50_A + AP50_B) / 2)  # exact TPs: same at 0.5..0.95
    assert bbox["vindr_AP20-50-A"] == pytest.approx(VINDR_A)
    assert bbox["vindr_AP20-50-B"] == pytest.approx(VINDR_B)
    assert bbox["vindr_AP20-50"] == pytest.approx((VINDR_A + VINDR_B) / 2)


def test_parity_with_plain_pycocotools(dataset):
    bbox = _evaluate(dataset["name"], dataset["output"])
    results_json = os.path.join(dataset["output"], "coco_instances_results.json")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(dataset["json"])
        dt = gt.loadRes(results_json)
        coco = COCOeval(gt, dt, "bbox")
        coco.evaluate(), coco.accumulate(), coco.summarize()
    assert bbox["AP"] == pytest.approx(coco.stats[0] * 100)
    assert bbox["AP50"] == pytest.approx(coco.stats[1] * 100)
    for category_id, name in ((1, "A"), (2, "B")):
        with contextlib.redirect_stdout(io.StringIO()):
            single = COCOeval(gt, dt, "bbox")
            single.params.catIds = [category_id]
            single.evaluate(), single.accumulate(), single.summarize()
        assert bbox[f"AP50-{name}"] == pytest.approx(single.stats[1] * 100)
    with contextlib.redirect_stdout(io.StringIO()):
        low = COCOeval(gt, dt, "bbox")
        low.params.iouThrs = np.linspace(0.2, 0.5, 7)
        low.evaluate(), low.accumulate(), low.summarize()
    assert bbox["vindr_AP20-50"] == pytest.approx(low.stats[0] * 100)  # mean over all 7 IoUs
    np.testing.assert_allclose(VINDR_IOU_THRESHOLDS, [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5])


def test_no_predictions_give_nan(dataset, tmp_path):
    bbox = _evaluate(dataset["name"], str(tmp_path), predictions={1: [], 2: []})
    assert math.isnan(bbox["vindr_AP20-50"]) and math.isnan(bbox["AP50-A"])


def test_registered_and_chosen_by_metadata(dataset, tmp_path):
    from vertspine.config import get_vertspine_cfg

    assert "vindr" in registered_evaluator_types()
    evaluator = build_evaluator(get_vertspine_cfg(), dataset["name"], str(tmp_path))
    assert isinstance(evaluator, VinDrEvaluator) and evaluator._use_fast_impl is False
