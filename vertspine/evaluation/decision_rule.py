"""VinDr-SpineXR's overall decision rule: gate a detector's boxes by an image classifier.

Where the classifier's p(abnormal) is below ``abnormal_threshold`` T, only boxes scoring at
least ``keep_threshold`` K are kept; on the other images every box is kept. T = 0 keeps all.
VinDr-SpineXR took T = 0.28 from its test-set results; here (T, K) are chosen on the validation
split (:func:`choose_thresholds`, a grid search maximising AP50) and then applied to the test
split. AP is COCO box AP (pycocotools COCOeval, IoU 0.50:0.95) and AP50 its IoU-0.5 value, in
percent, with every ground-truth image counted (images without detections included).
"""
import contextlib
import hashlib
import io
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = [
    "DEFAULT_ABNORMAL_GRID",
    "DEFAULT_KEEP_GRID",
    "abnormal_probabilities",
    "apply_decision_rule",
    "choose_thresholds",
    "coco_box_ap",
    "load_coco_gt",
]

DEFAULT_ABNORMAL_GRID = tuple(round(0.05 * i, 2) for i in range(0, 20))  # 0 = rule off
DEFAULT_KEEP_GRID = tuple(round(0.1 * i, 1) for i in range(1, 10))


def load_coco_gt(json_file: str) -> COCO:
    """pycocotools COCO ground truth, loaded quietly."""
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(json_file)


def abnormal_probabilities(predictions: Sequence[Mapping[str, Any]]) -> Dict[Any, float]:
    """image id -> p(abnormal) (the last of each ``probs``) from classifier predictions."""
    return {p["image_id"]: float(p["probs"][-1]) for p in predictions}


def apply_decision_rule(detections: Sequence[Mapping[str, Any]], p_abnormal: Mapping[Any, float],
                        abnormal_threshold: float, keep_threshold: float) -> List[Dict[str, Any]]:
    """The detections the rule keeps (see the module docstring).

    Args:
        detections: COCO results (``image_id``, ``category_id``, ``bbox`` XYWH, ``score``).
        p_abnormal: image id -> classifier p(abnormal).
        abnormal_threshold: T.
        keep_threshold: K.
    Raises:
        ValueError: a detection's image has no classifier probability.
    """
    missing = sorted({d["image_id"] for d in detections} - set(p_abnormal), key=str)
    if missing:
        raise ValueError(f"{len(missing)} images with detections have no classifier prediction "
                         f"(e.g. image ids {missing[:5]}); pass the classifier predictions of "
                         "the same dataset split.")
    return [dict(d) for d in detections
            if p_abnormal[d["image_id"]] >= abnormal_threshold or d["score"] >= keep_threshold]


def coco_box_ap(gt: COCO, detections: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """COCO box AP and AP50 (percent) of ``detections`` against ``gt`` (all its images)."""
    if not detections:
        return {"AP": 0.0, "AP50": 0.0}
    unknown = sorted({d["image_id"] for d in detections} - set(gt.getImgIds()), key=str)
    if unknown:
        raise ValueError(f"Detections refer to image ids {unknown[:5]} that are not in the "
                         "ground truth; pass the dataset the detections were made on.")
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(gt, gt.loadRes([dict(d) for d in detections]), "bbox")
        evaluator.params.imgIds = sorted(gt.getImgIds())
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {"AP": 100.0 * max(float(evaluator.stats[0]), 0.0),
            "AP50": 100.0 * max(float(evaluator.stats[1]), 0.0)}


def choose_thresholds(gt: COCO, detections: Sequence[Mapping[str, Any]],
                      p_abnormal: Mapping[Any, float],
                      abnormal_grid: Sequence[float] = DEFAULT_ABNORMAL_GRID,
                      keep_grid: Sequence[float] = DEFAULT_KEEP_GRID) -> Dict[str, Any]:
    """Grid search of (T, K) maximising AP50; run it on the validation split only.

    Ties go to the first pair in grid order (smaller T, then smaller K), so the rule is off
    (T = 0, when in the grid) unless it helps.

    Returns:
        ``abnormal_threshold``, ``keep_threshold``, ``AP``/``AP50`` with the rule,
        ``AP_without``/``AP50_without`` (all boxes), and ``grid``: [T, K, AP50] rows.
    """
    scores = np.array([d["score"] for d in detections], dtype=float)
    p_image = np.array([p_abnormal[d["image_id"]] for d in detections], dtype=float) \
        if detections else np.zeros(0)
    cache: Dict[str, Dict[str, float]] = {}
    rows, best = [], None
    for t in abnormal_grid:
        for k in keep_grid:
            kept = (p_image >= t) | (scores >= k)
            key = hashlib.sha1(np.packbits(kept).tobytes()).hexdigest()  # same kept set, same AP
            if key not in cache:
                cache[key] = coco_box_ap(gt, [d for d, keep in zip(detections, kept) if keep])
            rows.append([float(t), float(k), cache[key]["AP50"]])
            if best is None or cache[key]["AP50"] > best[2]["AP50"]:
                best = (float(t), float(k), cache[key])
    without = coco_box_ap(gt, detections)
    return {"abnormal_threshold": best[0], "keep_threshold": best[1], "AP": best[2]["AP"],
            "AP50": best[2]["AP50"], "AP_without": without["AP"],
            "AP50_without": without["AP50"], "grid": rows}

