"""tools/ensemble_classifiers.py and tools/apply_decision_rule.py on hand-built numbers."""
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, load_script
from vertspine.data import register_coco_dataset, unregister_dataset
from vertspine.evaluation.classifier_ensemble import ensemble_binary_predictions
from vertspine.evaluation.decision_rule import apply_decision_rule, coco_box_ap, load_coco_gt


def _tool(name):
    return load_script(f"tools/{name}.py", name)


def _write_predictions(path, dataset, probs, labels=(1, 0, 1)):
    with open(path, "w") as f:
        json.dump({"dataset": dataset, "class_names": ["normal", "abnormal"], "predictions": [
            {"image_id": i, "file_name": f"{i}.png", "label": y, "probs": [p], "logits": [0.0]}
            for i, (p, y) in enumerate(zip(probs, labels))]}, f)
    return str(path)


def test_mean_logit_ensemble_by_hand(tmp_path):
    a = _write_predictions(tmp_path / "a.json", "x_test", [0.9, 0.2, 0.5])
    b = _write_predictions(tmp_path / "b.json", "x_test", [0.6, 0.4, 1.0])
    info = _tool("ensemble_classifiers").main(
        ["--predictions", a, b, "--output", str(tmp_path / "out"), "--threshold", "0.5",
         "--bootstrap", "0"])
    # mean of two logits = log of the geometric mean of the odds
    odds = [math.sqrt(9 * 1.5), math.sqrt(0.25 * (0.4 / 0.6)), math.sqrt(1 * (1 - 1e-6) / 1e-6)]
    expected = [o / (1 + o) for o in odds]
    with open(tmp_path / "out" / "classification_predictions.json") as f:
        got = [p["probs"][0] for p in json.load(f)["predictions"]]
    assert got == pytest.approx(expected, abs=1e-9)
    assert expected[0] == pytest.approx(0.786061, abs=1e-6)
    assert info["metrics"]["AUROC"] == 100.0 and info["metrics"]["specificity"] == 100.0
    assert info["threshold_source"] == "--threshold"


def test_ensemble_threshold_from_val_and_mismatch_errors(tmp_path):
    val = [_write_predictions(tmp_path / f"v{i}.json", "x_val", p, (1, 0, 0))
           for i, p in enumerate(([0.7, 0.3, 0.6], [0.7, 0.5, 0.6]))]
    test = [_write_predictions(tmp_path / f"t{i}.json", "x_test", p)
            for i, p in enumerate(([0.9, 0.2, 0.5], [0.6, 0.4, 1.0]))]
    info = _tool("ensemble_classifiers").main(
        ["--predictions", *test, "--val-predictions", *val, "--output", str(tmp_path / "o"),
         "--bootstrap", "0"])
    # val ensemble: 0.7, sqrt(3/7)/(1+sqrt(3/7)) = 0.3956, 0.6 -> Youden picks 0.7 (J = 1)
    assert info["threshold"] == pytest.approx(0.7) and info["val_youden_j"] == 1.0
    # test ensemble 0.786 (label 1), 0.290 (0), 0.999 (1) at 0.7: all right
    assert info["metrics"]["threshold"] == pytest.approx(0.7)
    assert info["metrics"]["sensitivity"] == 100.0 and info["metrics"]["specificity"] == 100.0
    with pytest.raises(ValueError, match="different images"):
        ensemble_binary_predictions([[{"image_id": 1, "label": 0, "probs": [0.5]}],
                                     [{"image_id": 2, "label": 0, "probs": [0.5]}]])
    with pytest.raises(ValueError, match="disagree on the labels"):
        ensemble_binary_predictions([[{"image_id": 1, "label": 0, "probs": [0.5]}],
                                     [{"image_id": 1, "label": 1, "probs": [0.5]}]])


def test_ensemble_tool_runs_as_a_script(tmp_path):
    a = _write_predictions(tmp_path / "a.json", "x_val", [0.9, 0.2, 0.5])
    tool = os.path.join(REPO_ROOT, "tools", "ensemble_classifiers.py")
    result = subprocess.run([sys.executable, tool, "--predictions", a, "--output",
                             str(tmp_path / "o"), "--bootstrap", "10"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sensitivity_thr_chosen_on_this_set: 100.0000" in result.stdout  # x_val: labelled


@pytest.fixture
def detection_case(tmp_path):
    """Image 1 abnormal (one lesion), image 2 normal. The detector finds the lesion (0.9) and
    puts a false positive on the normal image with a higher score (0.95)."""
    gt = {"images": [{"id": 1, "file_name": "1.png", "width": 100, "height": 100},
                     {"id": 2, "file_name": "2.png", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
                           "area": 400, "iscrowd": 0}],
          "categories": [{"id": 1, "name": "lesion"}]}
    gt_json = str(tmp_path / "gt.json")
    json.dump(gt, open(gt_json, "w"))
    detections = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9},
                  {"image_id": 2, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.95}]
    det_json = str(tmp_path / "dets.json")
    json.dump(detections, open(det_json, "w"))
    cls_json = str(tmp_path / "cls.json")
    json.dump({"predictions": [{"image_id": 1, "label": 1, "probs": [0.8]},
                               {"image_id": 2, "label": 0, "probs": [0.1]}]}, open(cls_json, "w"))
    names = ["rule_case_val", "rule_case_test"]
    for name in names:
        register_coco_dataset(name, gt_json, str(tmp_path), check_images=False)
    yield {"gt": gt_json, "dets": det_json, "cls": cls_json, "detections": detections}
    for name in names:
        unregister_dataset(name)


def test_rule_removes_the_false_positive_and_ap50_rises_by_50_points(detection_case):
    gt = load_coco_gt(detection_case["gt"])
    detections = detection_case["detections"]
    # Without: ranks FP (0.95), TP (0.9): recall 1 at precision 1/2 -> AP50 = 50 (also AP).
    assert coco_box_ap(gt, detections) == pytest.approx({"AP": 50.0, "AP50": 50.0})
    gated = apply_decision_rule(detections, {1: 0.8, 2: 0.1}, 0.5, 0.99)
    assert [d["image_id"] for d in gated] == [1]
    assert coco_box_ap(gt, gated) == pytest.approx({"AP": 100.0, "AP50": 100.0})
    # A classifier wrong on the abnormal image removes the true positive instead: AP50 0.
    wrong = apply_decision_rule(detections, {1: 0.2, 2: 0.1}, 0.5, 0.92)
    assert [d["image_id"] for d in wrong] == [2] and coco_box_ap(gt, wrong)["AP50"] == 0.0
    with pytest.raises(ValueError, match="no classifier prediction"):
        apply_decision_rule(detections, {1: 0.8}, 0.5, 0.99)


def test_choose_on_val_then_apply_on_test(detection_case, tmp_path):
    tool = _tool("apply_decision_rule")
    common = ["--detections", detection_case["dets"], "--classifier-predictions",
              detection_case["cls"]]
    chosen = tmp_path / "val"
    tool.main([*common, "--dataset", "rule_case_val", "--choose-on-val", "--output", str(chosen),
               "--abnormal-grid", "0", "0.5", "--keep-grid", "0.5", "0.99"])
    saved = json.load(open(chosen / "decision_rule_thresholds.json"))
    assert (saved["abnormal_threshold"], saved["keep_threshold"]) == (0.5, 0.99)
    assert [row[2] for row in saved["grid"]] == pytest.approx([50, 50, 50, 100])
    assert saved["AP50_without"] == pytest.approx(50.0) and saved["AP50"] == pytest.approx(100.0)

    results = tool.main([*common, "--dataset", "rule_case_test", "--thresholds",
                         str(chosen / "decision_rule_thresholds.json"), "--output",
                         str(tmp_path / "test")])
    assert results["without_rule"]["AP50"] == pytest.approx(50.0)
    assert results["with_rule"]["AP50"] == pytest.approx(100.0)
    assert results["num_detections_kept"] == 1 and "rule_case_val" in results["threshold_source"]
    with pytest.raises(SystemExit):  # never choose on a test split
        tool.main([*common, "--dataset", "rule_case_test", "--choose-on-val", "--output",
                   str(tmp_path / "bad")])


def test_missing_prediction_file_is_named_with_the_fix(tmp_path, capsys):
    a = _write_predictions(tmp_path / "a.json", "x_test", [0.9, 0.2, 0.5])
    with pytest.raises(SystemExit):
        _tool("ensemble_classifiers").main(
            ["--predictions", a, str(tmp_path / "gone.json"), "--output", str(tmp_path / "o")])
    assert "gone.json' does not exist; give the classification_predictions.json" in \
        capsys.readouterr().err
