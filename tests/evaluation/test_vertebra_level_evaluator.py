"""VertebraLevelEvaluator on a registered dataset: metrics, files, COCO beside it, gloo."""
import copy
import csv
import json
import os

import cv2
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluators
from detectron2.structures import Boxes, Instances
from detectron2.utils import comm

from vertspine.config import get_vertspine_cfg
from vertspine.data import register_coco_dataset, unregister_dataset
from vertspine.data.phantom import VERTEBRA_LEVELS
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.config import add_vertebra_level_config
from vertspine.evaluation.vertebra_level import VertebraLevelEvaluator

# image id -> [(category id 1..25, XYWH box)], in annotation order (top to bottom)
GROUND_TRUTH = {
    1: [(3, [10, 0, 20, 10]), (4, [10, 12, 20, 10]), (5, [10, 24, 20, 10])],
    2: [(20, [5, 5, 30, 12]), (21, [5, 20, 30, 12])],
    3: [(19, [8, 8, 24, 16])],
}
EXPECTED = {"IDR": 100 * 4 / 6, "IRA": 100 / 3, "matched": 100 * 5 / 6, "off_by_one": 100 / 6,
            "MAE": 0.2, "num_vertebrae": 6.0, "num_images": 3.0}


def write_dataset(folder):
    images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in GROUND_TRUTH]
    annotations = [
        {"id": 10 * i + k, "image_id": i, "category_id": c, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for i, entries in GROUND_TRUTH.items() for k, (c, box) in enumerate(entries)
    ]
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(VERTEBRA_LEVELS)]
    path = os.path.join(folder, "levels.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def register(name, json_file):
    if name in DatasetCatalog:
        unregister_dataset(name)
    register_coco_dataset(name, json_file, os.path.dirname(json_file), check_images=False,
                          thing_classes=list(VERTEBRA_LEVELS), level_names=list(VERTEBRA_LEVELS),
                          evaluator_type="vertebra_level")


def xyxy(entry):
    x, y, w, h = entry[1]
    return [x, y, x + w, y + h]


def instances(boxes, classes, scores, gt_indices=None):
    result = Instances((64, 64))
    result.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    result.pred_classes = torch.tensor(classes, dtype=torch.int64)
    result.scores = torch.tensor(scores, dtype=torch.float32)
    result.level_probs = torch.full((len(classes), 25), 1 / 25)
    if gt_indices is not None:
        result.gt_indices = torch.tensor(gt_indices, dtype=torch.int64)
    return result


def model_outputs():
    """Image 1: prompted boxes, C5 called C6 (a lower-scoring duplicate says C5); image 2: a
    detector finds L1 (shifted by 1 px) and misses L2; image 3: T12 right."""
    g1, g2, g3 = ([xyxy(e) for e in GROUND_TRUTH[i]] for i in (1, 2, 3))
    shifted = [v + 1 for v in g2[0]]
    return [
        ({"image_id": 1}, {"instances": instances(g1 + [g1[2]], [2, 3, 5, 4], [0.9, 0.8, 0.7, 0.2], [0, 1, 2, 2])}),
        ({"image_id": 2}, {"instances": instances([shifted], [19], [0.9])}),
        ({"image_id": 3}, {"instances": instances(g3, [18], [0.6], [0])}),
    ]


@pytest.fixture
def dataset(tmp_path):
    name = f"levels_{tmp_path.name}"
    register(name, write_dataset(str(tmp_path)))
    yield name
    unregister_dataset(name)


def run(evaluator, pairs):
    evaluator.reset()
    for inp, out in pairs:
        evaluator.process([inp], [out])
    return evaluator.evaluate()


def test_metrics_and_files(dataset, tmp_path):
    out_dir = str(tmp_path / "eval")
    results = run(VertebraLevelEvaluator(dataset, output_dir=out_dir), model_outputs())
    metrics = results["vertebra_level"]
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value), key
    assert metrics["acc-C5"] == 0.0 and metrics["acc-L2"] == 0.0 and metrics["acc-T12"] == 100.0
    assert "acc-C1" not in metrics  # no ground truth
    with open(os.path.join(out_dir, "vertebra_level_confusion.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["gt \\ pred", *VERTEBRA_LEVELS, "unmatched"]
    c5 = rows[1 + VERTEBRA_LEVELS.index("C5")]
    assert c5[1 + VERTEBRA_LEVELS.index("C6")] == "1" and sum(map(int, c5[1:])) == 1
    assert rows[1 + VERTEBRA_LEVELS.index("L2")][-1] == "1"
    png = cv2.imread(os.path.join(out_dir, "vertebra_level_confusion.png"))
    assert png is not None and png.shape[0] > 300 and png.shape[1] > 300
    with open(os.path.join(out_dir, "vertebra_level_metrics.json")) as f:
        assert json.load(f)["metrics"] == metrics
    with open(os.path.join(out_dir, "vertebra_level_per_image.json")) as f:
        per_image = json.load(f)
    pairs = [(g, p) for image in per_image for g, p in zip(image["gt"], image["pred"])]
    assert sum(g == p for g, p in pairs) / len(pairs) * 100 == pytest.approx(metrics["IDR"])
    assert ("C5", "C6") in pairs and ("L2", None) in pairs
    assert not [n for n in os.listdir(out_dir) if n.endswith(".tmp")]


def test_builder_default_and_coco_beside_it_leaves_levels_unchanged(dataset, tmp_path):
    cfg = add_vertebra_level_config(get_vertspine_cfg())
    alone = build_evaluator(cfg, dataset, str(tmp_path / "alone"))
    assert isinstance(alone, VertebraLevelEvaluator)
    reference = run(alone, model_outputs())["vertebra_level"]

    cfg.TEST.VERTEBRA_LEVEL.WITH_COCO_AP = True
    both = build_evaluator(cfg, dataset, str(tmp_path / "both"))
    assert isinstance(both, DatasetEvaluators)
    pairs = model_outputs()
    classes_before = [copy.deepcopy(out["instances"].pred_classes) for _, out in pairs]
    results = run(both, pairs)  # COCO processes and evaluates first
    assert set(results) == {"bbox", "vertebra_level"}
    assert results["vertebra_level"] == reference
    assert results["bbox"]["AP-T12"] == pytest.approx(100.0)  # ids remapped 18 -> 19 by COCO
    assert all(torch.equal(a, out["instances"].pred_classes) for a, (_, out) in zip(classes_before, pairs))
    assert both._evaluators[1].evaluate()["vertebra_level"] == reference  # again, after COCO


def test_gt_indices_refer_to_the_record_list_with_crowd_entries(tmp_path):
    path = write_dataset(str(tmp_path))
    with open(path) as f:
        coco = json.load(f)
    coco["annotations"].insert(0, {"id": 99, "image_id": 3, "category_id": 1, "bbox": [0, 0, 5, 5],
                                   "area": 25, "iscrowd": 1})
    with open(path, "w") as f:
        json.dump(coco, f)
    name = f"levels_crowd_{tmp_path.name}"
    register(name, path)
    try:
        record = next(r for r in DatasetCatalog.get(name) if r["image_id"] == 3)
        index = next(i for i, a in enumerate(record["annotations"]) if not a.get("iscrowd"))
        pairs = [({"image_id": 3}, {"instances": instances([xyxy(GROUND_TRUTH[3][0])], [18], [0.5], [index])})]
        evaluator = VertebraLevelEvaluator(name, distributed=False)
        metrics = run(evaluator, pairs)["vertebra_level"]
        assert metrics["IDR"] == 100.0 and metrics["num_vertebrae"] == 1.0
        crowd = 1 - index  # a prediction made for the crowd entry is dropped, not IoU-matched
        pairs = [({"image_id": 3}, {"instances": instances([xyxy(GROUND_TRUTH[3][0])], [18], [0.9], [crowd])})]
        assert run(evaluator, pairs)["vertebra_level"]["matched"] == 0.0  # same box, yet unmatched
        pairs = [({"image_id": 3}, {"instances": instances([[0, 0, 5, 5]], [0], [0.9], [2])})]
        with pytest.raises(ValueError, match="Image 3: a prediction has gt_index 2, but the record has 2"):
            run(evaluator, pairs)
    finally:
        unregister_dataset(name)


def test_results_are_gathered_from_every_process(dataset, monkeypatch):
    """Two ranks, each with half of the images: rank 0 evaluates the union, rank 1 returns {}.

    comm.gather is replaced by the exchange gloo would do (a spawned two-process run costs two
    vertspine imports, tens of seconds on this machine)."""
    ranks = [VertebraLevelEvaluator(dataset) for _ in range(2)]
    pairs = model_outputs()
    for rank, evaluator in enumerate(ranks):
        evaluator.reset()
        for inp, out in pairs[rank::2]:
            evaluator.process([inp], [out])
    gathered = [copy.deepcopy(e._results) for e in ranks]
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: gathered if comm.get_rank() == 0 else [])
    main = ranks[0].evaluate()["vertebra_level"]
    single = run(VertebraLevelEvaluator(dataset, distributed=False), pairs)["vertebra_level"]
    assert main == single and main["num_images"] == 3.0
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    assert ranks[1].evaluate() == {}
