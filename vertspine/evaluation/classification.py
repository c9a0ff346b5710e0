"""The "classification" evaluator: image-level metrics, decision threshold, per-image predictions.

Chosen for datasets with ``evaluator_type "classification"`` (see
:mod:`vertspine.data.image_label_datasets`); it reads each input's ``label`` and each output's
``probs`` (:class:`vertspine.modeling.classification.ImageClassifier`).

Binary (one logit, or two classes: positive = class 1): AUROC, and sensitivity, specificity,
precision, F1, accuracy at a threshold on p(positive). The threshold is never chosen on the
split it is reported on, except on a validation split, where Youden's J picks it, it is saved to
``TEST.CLASSIFICATION.THRESHOLD_FILE`` (default ``OUTPUT_DIR/classification_threshold.json``) and
the metrics at it carry the suffix ``_thr_chosen_on_this_set`` (optimistic by construction).
Other splits use ``TEST.CLASSIFICATION.THRESHOLD`` when >= 0, else the saved validation
threshold, else 0.5 (with a warning). Multi-class: accuracy, balanced accuracy, macro
one-vs-rest AUROC. Every metric has a seeded bootstrap 95% interval (``_ci_low``/``_ci_high``);
metrics are percentages, ``threshold`` a probability.

Files in the output folder (atomic): ``classification_predictions.json`` / ``.csv`` (one row per
image: id, file, label, probs, logits: the input of ``tools/ensemble_classifiers.py`` and
``tools/apply_decision_rule.py``) and ``classification_metrics.json`` (metrics, threshold and
where it came from).
"""
import csv
import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from vertspine.data.image_label_datasets import dataset_split
from vertspine.utils.file_io import atomic_write, write_json

from .build import register_evaluator
from .classification_metrics import (
    BINARY_THRESHOLD_METRICS,
    auroc,
    binary_metrics,
    bootstrap_intervals,
    confusion_metrics,
    multiclass_metrics,
    youden_threshold,
)
from .gather import gather_on_main

__all__ = ["ClassificationEvaluator", "evaluate_predictions", "image_id_sort_key",
           "read_predictions", "write_predictions"]

logger = logging.getLogger(__name__)
CHOSEN_SUFFIX = "_thr_chosen_on_this_set"
DEFAULT_THRESHOLD = 0.5


def image_id_sort_key(image_id: Any) -> Tuple[int, Any]:
    """Numbers in numeric order, then everything else as text."""
    if isinstance(image_id, (int, float)) and not isinstance(image_id, bool):
        return (0, image_id)
    return (1, str(image_id))


class ClassificationEvaluator(DatasetEvaluator):
    """Collects (label, probs, logits) per image; evaluates on the main process."""

    def __init__(self, dataset_name: str, *, output_dir: Optional[str] = None,
                 threshold_file: Optional[str] = None, threshold: float = -1.0,
                 num_resamples: int = 1000, seed: int = 0, distributed: bool = True,
                 split: Optional[str] = None):
        """
        Args:
            dataset_name: the evaluated dataset (its ``thing_classes`` and ``split`` metadata).
            output_dir: folder of the prediction and metric files (None = none written).
            threshold_file: where a validation split saves, and other splits read, the
                threshold (None = neither).
            threshold: fixed threshold for non-validation splits (< 0 = from the file).
            num_resamples: bootstrap resamples (0 = no intervals).
            seed: bootstrap seed.
            distributed: gather the predictions of all processes.
            split: overrides ``dataset_split(dataset_name)``.
        """
        self.dataset_name = dataset_name
        self.output_dir = output_dir
        self.threshold_file = threshold_file
        self.threshold = threshold
        self.num_resamples = num_resamples
        self.seed = seed
        self.distributed = distributed
        self.split = dataset_split(dataset_name) if split is None else split
        self.class_names = MetadataCatalog.get(dataset_name).get("thing_classes", None)
        self._predictions: List[Dict[str, Any]] = []

    def reset(self) -> None:
        self._predictions = []

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        for x, y in zip(inputs, outputs):
            if "label" not in x:
                raise ValueError(f"Dataset '{self.dataset_name}': an input has no 'label'; use "
                                 "INPUT.DATASET_MAPPER 'ImageLabelDatasetMapper'.")
            self._predictions.append({
                "image_id": x.get("image_id"), "file_name": x.get("file_name"),
                "label": int(x["label"]),
                "probs": y["probs"].detach().cpu().float().tolist(),
                "logits": y["logits"].detach().cpu().float().tolist(),
            })

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        predictions = gather_on_main(self._predictions, self.distributed)
        if predictions is None:  # not the main process
            return {}
        if not predictions:
            logger.warning(f"[ClassificationEvaluator] no predictions for {self.dataset_name}.")
            return {}
        predictions = sorted(predictions, key=lambda p: image_id_sort_key(p["image_id"]))
        if self.output_dir:
            write_predictions(self.output_dir, predictions, self.dataset_name, self.class_names)
        threshold, source = self._threshold()
        results, info = evaluate_predictions(
            predictions, choose_threshold=self.split == "val", threshold=threshold,
            num_resamples=self.num_resamples, seed=self.seed)
        info.setdefault("threshold_source", source)
        if info.get("threshold_source") == "youden_on_this_set" and self.threshold_file:
            self._save_threshold(info, len(predictions))
        info.update(dataset=self.dataset_name, split=self.split, metrics=dict(results))
        if self.output_dir:
            write_json(os.path.join(self.output_dir, "classification_metrics.json"), info)
        logger.info(f"Classification on {self.dataset_name} (split '{self.split}', threshold "
                    f"{info.get('threshold')} from {info['threshold_source']}): {dict(results)}")
        return {"classification": results}

    def _threshold(self) -> Tuple[float, str]:
        """The threshold of a non-validation split and where it came from."""
        if self.threshold >= 0:
            return float(self.threshold), "TEST.CLASSIFICATION.THRESHOLD"
        if self.threshold_file and os.path.isfile(self.threshold_file):
            with open(self.threshold_file) as f:
                saved = json.load(f)
            return float(saved["threshold"]), (f"{self.threshold_file} (chosen on "
                                               f"{saved.get('dataset')})")
        if self.split != "val":
            logger.warning(
                f"No validation threshold for {self.dataset_name}: no threshold file "
                f"({self.threshold_file}) and TEST.CLASSIFICATION.THRESHOLD is unset; using "
                f"{DEFAULT_THRESHOLD}. "
                "Evaluate the validation split first, or set either key.")
        return DEFAULT_THRESHOLD, "default"

    def _save_threshold(self, info: Dict[str, Any], num_images: int) -> None:
        write_json(self.threshold_file, {
            "threshold": info["threshold"], "youden_j": info["youden_j"],
            "dataset": self.dataset_name, "num_images": num_images,
            "criterion": "Youden's J = sensitivity + specificity - 1"})
        logger.info(f"Saved the threshold chosen on {self.dataset_name} to {self.threshold_file}.")


def evaluate_predictions(predictions: List[Dict[str, Any]], *, choose_threshold: bool,
                         threshold: float = DEFAULT_THRESHOLD, num_resamples: int = 1000,
                         seed: int = 0) -> Tuple["OrderedDict[str, float]", Dict[str, Any]]:
    """Metrics (percent) of per-image predictions; see the module docstring.

    Args:
        predictions: dicts with ``label`` and ``probs`` (1 or C values).
        choose_threshold: binary only: pick the threshold by Youden's J on these predictions
            (metric names then end in ``_thr_chosen_on_this_set``) instead of ``threshold``.
        threshold: the fixed threshold otherwise.
        num_resamples, seed: bootstrap.
    Returns:
        (flat metrics, info with ``threshold``/``youden_j``/``threshold_source`` when binary).
    """
    labels = np.array([p["label"] for p in predictions])
    probs = np.array([p["probs"] for p in predictions], dtype=float)
    results: "OrderedDict[str, float]" = OrderedDict(num_images=float(len(labels)))
    info: Dict[str, Any] = {}
    if probs.shape[1] <= 2:
        scores = probs[:, -1]
        suffix = ""
        if choose_threshold and len(set(labels.tolist())) < 2:
            logger.warning(f"Cannot choose a threshold by Youden's J: every label is {labels[0]}; "
                           f"using {threshold} instead.")
            choose_threshold = False
        if choose_threshold:
            threshold, info["youden_j"] = youden_threshold(labels, scores)
            info["threshold_source"] = "youden_on_this_set"
            suffix = CHOSEN_SUFFIX
        info["threshold"] = float(threshold)
        point = binary_metrics(labels, scores, threshold)
        results["num_positive"] = float(labels.sum())
        results["threshold"] = float(threshold)

        def metric_fn(index):
            y, s = labels[index].astype(bool), scores[index]
            return {"AUROC": auroc(y, s), **confusion_metrics(y, s >= threshold)}

        names = {"AUROC": "AUROC", **{k: k + suffix for k in BINARY_THRESHOLD_METRICS}}
    else:
        point = {k: float(v) for k, v in multiclass_metrics(labels, probs).items()}

        def metric_fn(index):
            return multiclass_metrics(labels[index], probs[index])

        names = {k: k for k in point}
    intervals = bootstrap_intervals(metric_fn, len(labels), num_resamples, seed) \
        if num_resamples > 0 else {}
    for key, name in names.items():
        results[name] = 100.0 * point[key]
        if key in intervals:
            results[f"{name}_ci_low"] = 100.0 * intervals[key][0]
            results[f"{name}_ci_high"] = 100.0 * intervals[key][1]
    return results, info


def write_predictions(output_dir: str, predictions: List[Dict[str, Any]], dataset_name: str,
                      class_names: Optional[List[str]] = None) -> str:
    """Write ``classification_predictions.json`` and ``.csv`` (atomically); returns the json path.

    The json is ``{"dataset", "class_names", "predictions": [{"image_id", "file_name",
    "label", "probs", "logits"}]}``; the csv has one row per image with ``prob_i``/``logit_i``
    columns.
    """
    path = os.path.join(output_dir, "classification_predictions.json")
    write_json(path, {"dataset": dataset_name, "class_names": class_names,
                      "predictions": predictions}, indent=None)
    width = len(predictions[0]["probs"]) if predictions else 0
    with atomic_write(os.path.join(output_dir, "classification_predictions.csv"), "w") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "file_name", "label"] + [f"prob_{i}" for i in range(width)]
                        + [f"logit_{i}" for i in range(width)])
        for p in predictions:
            writer.writerow([p["image_id"], p["file_name"], p["label"], *p["probs"],
                             *p["logits"]])
    return path


def read_predictions(path: str) -> Dict[str, Any]:
    """A ``classification_predictions.json`` (see :func:`write_predictions`), checked.

    Raises:
        ValueError: the file lacks ``predictions`` or an entry lacks ``image_id``/``label``/
            ``probs``, or an image id repeats.
    """
    with open(path) as f:
        data = json.load(f)
    entries = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path} has no 'predictions' list; pass the "
                         "classification_predictions.json written by the evaluator.")
    bad = [i for i, p in enumerate(entries) if not {"image_id", "label", "probs"} <= set(p)]
    if bad:
        raise ValueError(f"{path}: predictions {bad[:5]} lack image_id, label or probs.")
    ids = [p["image_id"] for p in entries]
    if len(set(map(str, ids))) != len(ids):
        raise ValueError(f"{path}: image ids repeat; one prediction per image is expected.")
    return data


@register_evaluator("classification")
def build_classification_evaluator(cfg, dataset_name: str,
                                   output_folder: str) -> ClassificationEvaluator:
    """The classification evaluator configured by ``TEST.CLASSIFICATION``."""
    node = cfg.TEST.CLASSIFICATION
    threshold_file = node.THRESHOLD_FILE or os.path.join(cfg.OUTPUT_DIR,
                                                         "classification_threshold.json")
    return ClassificationEvaluator(
        dataset_name, output_dir=output_folder, threshold_file=threshold_file,
        threshold=node.THRESHOLD, num_resamples=node.BOOTSTRAP, seed=node.BOOTSTRAP_SEED)
