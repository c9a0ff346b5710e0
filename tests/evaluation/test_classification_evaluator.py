"""The classification metrics (parity with scikit-learn), bootstrap intervals, the threshold
chosen on the validation split and applied to the test split, and the prediction files."""
import json
import os

import numpy as np
import pytest
import torch
from detectron2.data import MetadataCatalog
from sklearn import metrics as skm

from vertspine.evaluation.classification import (
    CHOSEN_SUFFIX,
    ClassificationEvaluator,
    evaluate_predictions,
    read_predictions,
)
from vertspine.evaluation.classification_metrics import (
    auroc,
    binary_metrics,
    bootstrap_intervals,
    multiclass_metrics,
    percentile_interval,
    youden_threshold,
)


def _binary_data(seed, n=120):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = np.round(np.clip(0.3 * labels + rng.normal(0.35, 0.25, n), 0, 1), 2)  # with ties
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_equal_sklearn(seed):
    labels, scores = _binary_data(seed)
    threshold = 0.5
    got = binary_metrics(labels, scores, threshold)
    predicted = (scores >= threshold).astype(int)
    assert got["AUROC"] == pytest.approx(skm.roc_auc_score(labels, scores), abs=1e-12)
    assert got["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted))
    assert got["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert got["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert got["F1"] == pytest.approx(skm.f1_score(labels, predicted))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))


def test_undefined_metrics_are_nan_not_zero():
    got = binary_metrics([1, 1, 1], [0.2, 0.4, 0.9], 0.95)
    assert np.isnan(got["AUROC"]) and np.isnan(got["specificity"]) and np.isnan(got["precision"])
    assert got["sensitivity"] == 0.0


def test_multiclass_metrics_equal_sklearn():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = multiclass_metrics(labels, probs)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, probs.argmax(1)))
    assert got["balanced_accuracy"] == pytest.approx(
        skm.balanced_accuracy_score(labels, probs.argmax(1)))
    assert got["AUROC"] == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-12)


def test_youden_threshold_is_the_brute_force_maximum():
    labels, scores = _binary_data(3)
    threshold, j = youden_threshold(labels, scores)

    def youden(t):
        m = binary_metrics(labels, scores, t)
        return m["sensitivity"] + m["specificity"] - 1

    best = max(youden(t) for t in np.unique(scores))
    assert j == pytest.approx(best) and youden(threshold) == pytest.approx(best)
    assert threshold in scores
    with pytest.raises(ValueError, match="both classes"):
        youden_threshold([1, 1], [0.3, 0.6])


def test_percentile_interval_has_no_off_by_one():
    values = np.arange(40, dtype=float)  # the original's values[-bound] would give 39 here
    low, high = percentile_interval(values)
    assert (low, high) == pytest.approx((0.975, 38.025))
    assert all(np.isnan(percentile_interval([np.nan, np.inf])))


def test_bootstrap_matches_a_sklearn_loop_and_contains_the_estimate():
    labels, scores = _binary_data(4, n=60)
    threshold, num, seed = 0.5, 200, 11

    def vectorised(index):
        y, s = labels[index], scores[index]
        return {"AUROC": auroc(y, s), "sensitivity": binary_metrics_batch(y, s >= threshold)}

    def binary_metrics_batch(y, predicted):
        return ((y == 1) & predicted).sum(-1) / np.maximum((y == 1).sum(-1), 1)

    intervals = bootstrap_intervals(vectorised, len(labels), num, seed)
    rng = np.random.default_rng(seed)
    aucs, sens = [], []
    for _ in range(num):  # reference: one resample at a time, scikit-learn metrics
        index = rng.integers(0, len(labels), len(labels))
        y, s = labels[index], scores[index]
        aucs.append(skm.roc_auc_score(y, s) if 0 < y.sum() < len(y) else np.nan)
        sens.append(skm.recall_score(y, (s >= threshold).astype(int)))
    aucs = np.array(aucs)
    assert intervals["AUROC"] == pytest.approx(tuple(np.percentile(aucs[~np.isnan(aucs)],
                                                                   [2.5, 97.5])))
    assert intervals["sensitivity"] == pytest.approx(tuple(np.percentile(sens, [2.5, 97.5])))
    point = skm.roc_auc_score(labels, scores)
    assert intervals["AUROC"][0] < point < intervals["AUROC"][1]
    assert bootstrap_intervals(vectorised, len(labels), num, seed) == intervals  # seeded


def _predictions(labels, scores):
    return [{"image_id": i, "file_name": f"img{i}.png", "label": int(y),
             "probs": [float(s)], "logits": [float(np.log(s / (1 - s)))]}
            for i, (y, s) in enumerate(zip(labels, np.clip(scores, 0.01, 0.99)))]


@pytest.fixture
def val_and_test(tmp_path):
    names = {split: f"cls_eval_{tmp_path.name}_{split}" for split in ("val", "test")}
    for split, name in names.items():
        MetadataCatalog.get(name).set(thing_classes=["normal", "abnormal"], split=split)
    yield names
    for name in names.values():
        MetadataCatalog.remove(name)


def _run(evaluator, predictions):
    evaluator.reset()
    inputs = [{"image_id": p["image_id"], "file_name": p["file_name"], "label": p["label"]}
              for p in predictions]
    outputs = [{"probs": torch.tensor(p["probs"]), "logits": torch.tensor(p["logits"])}
               for p in predictions]
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()["classification"]


def test_threshold_chosen_on_val_is_applied_on_test(val_and_test, tmp_path):
    threshold_file = str(tmp_path / "classification_threshold.json")
    val_labels, val_scores = _binary_data(7)
    test_labels, test_scores = _binary_data(8)
    common = dict(threshold_file=threshold_file, num_resamples=100, distributed=False)

    val = _run(ClassificationEvaluator(val_and_test["val"], output_dir=str(tmp_path / "val"),
                                       **common), _predictions(val_labels, val_scores))
    chosen, _ = youden_threshold(val_labels, np.clip(val_scores, 0.01, 0.99))
    saved = json.load(open(threshold_file))
    assert saved["threshold"] == pytest.approx(chosen) and saved["dataset"] == val_and_test["val"]
    assert val["threshold"] == pytest.approx(chosen)
    assert "sensitivity" + CHOSEN_SUFFIX in val and "sensitivity" not in val  # labelled as such

    test = _run(ClassificationEvaluator(val_and_test["test"], output_dir=str(tmp_path / "test"),
                                        **common), _predictions(test_labels, test_scores))
    own, _ = youden_threshold(test_labels, np.clip(test_scores, 0.01, 0.99))
    assert own != pytest.approx(chosen)  # the test set's own optimum is not used
    expected = binary_metrics(test_labels, np.clip(test_scores, 0.01, 0.99), chosen)
    assert test["threshold"] == pytest.approx(chosen)
    for name in ("sensitivity", "specificity", "precision", "F1", "accuracy", "AUROC"):
        assert test[name] == pytest.approx(100 * expected[name])
        assert test[f"{name}_ci_low"] <= test[name] <= test[f"{name}_ci_high"]
    assert saved == json.load(open(threshold_file))  # the test split never rewrites it

    fixed = _run(ClassificationEvaluator(val_and_test["test"], threshold=0.7, **common),
                 _predictions(test_labels, test_scores))
    assert fixed["threshold"] == 0.7


def test_without_a_val_threshold_the_default_is_used_and_logged(val_and_test, tmp_path, caplog):
    labels, scores = _binary_data(9)
    evaluator = ClassificationEvaluator(val_and_test["test"], threshold_file=str(tmp_path / "no"),
                                        num_resamples=0, distributed=False)
    results = _run(evaluator, _predictions(labels, scores))
    assert results["threshold"] == 0.5 and "AUROC_ci_low" not in results
    assert "No validation threshold" in caplog.text


def test_prediction_files_round_trip(val_and_test, tmp_path):
    labels, scores = _binary_data(10, n=20)
    predictions = _predictions(labels, scores)
    out = str(tmp_path / "out")
    _run(ClassificationEvaluator(val_and_test["test"], output_dir=out, num_resamples=0,
                                 distributed=False), predictions)
    data = read_predictions(os.path.join(out, "classification_predictions.json"))
    assert data["class_names"] == ["normal", "abnormal"]
    assert [p["label"] for p in data["predictions"]] == [p["label"] for p in predictions]
    assert data["predictions"][3]["probs"] == pytest.approx(predictions[3]["probs"])
    rows = open(os.path.join(out, "classification_predictions.csv")).read().splitlines()
    assert rows[0] == "image_id,file_name,label,prob_0,logit_0" and len(rows) == 21
    metrics = json.load(open(os.path.join(out, "classification_metrics.json")))
    assert metrics["threshold_source"] == "default" and metrics["split"] == "test"


def test_multiclass_results_are_percentages():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 50)
    probs = rng.dirichlet(np.ones(3), 50)
    predictions = [{"label": int(y), "probs": p.tolist()} for y, p in zip(labels, probs)]
    results, info = evaluate_predictions(predictions, choose_threshold=True, num_resamples=20)
    expected = multiclass_metrics(labels, probs)
    assert results["balanced_accuracy"] == pytest.approx(100 * expected["balanced_accuracy"])
    assert results["AUROC"] == pytest.approx(100 * expected["AUROC"])
    assert "threshold" not in results and info == {}
