"""The "vindr" evaluator: COCO box AP with official pycocotools, plus the VinDr-SpineXR metrics.

Reported under ``bbox/`` (values in percent, as detectron2's COCO metrics):

- ``AP``, ``AP50``, ``AP75``, ``APs/m/l``, ``AP-<class>``: detectron2's ``COCOEvaluator`` with
  the official ``pycocotools.cocoeval.COCOeval`` (never the unofficial fast version).
  ``AP50`` is the paper's "mAP@0.5" (33.56 for the VinDr-SpineXR system).
- ``AP50-<class>``: the precision of IoU 0.5, all areas, 100 detections, averaged over the 101
  recall points; NaN for a class without ground truth (a warning names it).
- ``vindr_AP20-50`` and ``vindr_AP20-50-<class>``: what upstream's evaluator calls "AP": the
  same precision averaged over 7 IoU thresholds ``linspace(0.2, 0.5, 7)`` (pycocotools
  ``COCOeval`` with ``params.iouThrs`` set), classes and recall points. Not COCO AP.

With no predictions at all every metric is NaN, as detectron2's COCO metrics are.
"""
import contextlib
import io
import logging
import math
from typing import Dict, List, Optional

import numpy as np
from detectron2.config import CfgNode
from detectron2.utils.logger import create_small_table
from pycocotools.cocoeval import COCOeval

from .build import DetectionEvaluator, register_evaluator, score_threshold_setting

__all__ = ["VINDR_IOU_THRESHOLDS", "VinDrEvaluator", "build_vindr_evaluator", "vindr_box_metrics"]

logger = logging.getLogger(__name__)
VINDR_IOU_THRESHOLDS = np.linspace(0.2, 0.5, 7)


def _mean_precision(precision: np.ndarray) -> float:
    """Mean of the valid (> -1) entries, in percent; NaN when none is valid."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) * 100.0 if valid.size else float("nan")


def vindr_box_metrics(coco_eval: Optional[COCOeval], class_names: List[str]) -> Dict[str, float]:
    """Per-class AP50 and the VinDr AP over IoU 0.2..0.5 from an evaluated box ``COCOeval``.

    Args:
        coco_eval: evaluated and accumulated with the default IoU thresholds (or None when there
            were no predictions); its ground truth, detections, images and maxDets are reused.
        class_names: names of the categories in ``coco_eval.params.catIds`` order.
    Returns:
        ``AP50-<class>``, ``vindr_AP20-50`` and ``vindr_AP20-50-<class>`` in percent.
    """
    if coco_eval is None:
        nan = float("nan")
        return {"vindr_AP20-50": nan, **{f"AP50-{n}": nan for n in class_names},
                **{f"vindr_AP20-50-{n}": nan for n in class_names}}
    # precision: [IoU thresholds, recall points, classes, area ranges, maxDets]; area "all" = 0,
    # the largest maxDets last
    iou50 = int(np.flatnonzero(np.isclose(coco_eval.params.iouThrs, 0.5))[0])
    at50 = coco_eval.eval["precision"][iou50, :, :, 0, -1]
    results = {f"AP50-{name}": _mean_precision(at50[:, k]) for k, name in enumerate(class_names)}

    low_iou = COCOeval(coco_eval.cocoGt, coco_eval.cocoDt, "bbox")
    low_iou.params.imgIds = coco_eval.params.imgIds
    low_iou.params.maxDets = coco_eval.params.maxDets
    low_iou.params.iouThrs = VINDR_IOU_THRESHOLDS
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
        low_iou.evaluate()
        low_iou.accumulate()
    precision = low_iou.eval["precision"][:, :, :, 0, -1]
    results["vindr_AP20-50"] = _mean_precision(precision)
    for k, name in enumerate(class_names):
        results[f"vindr_AP20-50-{name}"] = _mean_precision(precision[:, :, k])
    missing = [n for n in class_names if math.isnan(results[f"AP50-{n}"])]
    if missing:
        logger.warning("No ground truth for classes %s: their AP is NaN and left out of the means.",
                       missing)
    return results


class VinDrEvaluator(DetectionEvaluator):
    """detectron2's COCOEvaluator on boxes (official COCOeval) plus :func:`vindr_box_metrics`.

    Writes ``coco_instances_results.json`` and ``instances_predictions.pth`` to ``output_dir``
    as COCOEvaluator does; the dataset needs ``json_file`` metadata (vertspine's registration
    sets it).
    """

    def __init__(self, dataset_name: str, output_dir: Optional[str] = None, *,
                 distributed: bool = True, max_dets_per_image: Optional[int] = None,
                 score_threshold: str = "the model's test score threshold"):
        super().__init__(dataset_name, score_threshold=score_threshold, tasks=("bbox",),
                         distributed=distributed, output_dir=output_dir, use_fast_impl=False,
                         max_dets_per_image=max_dets_per_image)

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)
        if iou_type != "bbox" or class_names is None:
            return results
        extra = vindr_box_metrics(coco_eval, list(class_names))
        shown = {k: v for k, v in extra.items() if not k.startswith("vindr_AP20-50-")}
        self._logger.info(
            "VinDr-SpineXR metrics (AP50 per class; vindr_AP20-50 = AP over IoU 0.2..0.5):\n"
            + create_small_table(shown)
        )
        results.update(extra)
        return results


@register_evaluator("vindr")
def build_vindr_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str) -> VinDrEvaluator:
    """COCO box AP + per-class AP50 + VinDr AP over IoU 0.2..0.5 (official pycocotools)."""
    return VinDrEvaluator(dataset_name, output_dir=output_folder,
                          score_threshold=score_threshold_setting(cfg))
