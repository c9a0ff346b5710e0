"""The vertebra-level evaluator (``evaluator_type="vertebra_level"``): IDR, IRA, confusion.

Model outputs, per image: ``{"instances": Instances}`` with ``pred_boxes`` (XYXY, original
image pixels), ``pred_classes`` (int64, 0-based contiguous level), ``scores`` and, for models
prompted with boxes, ``gt_indices`` (int64, index into the dataset record's ``annotations``
list; -1 for a detector box). ``level_probs`` may be present and is not needed. Detectors
without ``gt_indices`` are matched by IoU. Ground truth is read from
``DatasetCatalog.get(dataset_name)``: annotation boxes and contiguous ``category_id``; crowd
annotations are left out (and predictions whose ``gt_indices`` name one are dropped). Matching and metrics: :mod:`.vertebra_level_metrics`.

Each process keeps only small per-image arrays (levels of the ground truth and of the matched
predictions), converted from the outputs in :meth:`process`; nothing of the model's
``Instances`` is kept, so evaluators running beside it (COCO's remaps category ids of its own
copies in place) cannot change these results. :meth:`evaluate` gathers them on the main process
(:func:`~.gather.gather_on_main`), returns ``{"vertebra_level": {...}}`` there ({} elsewhere)
and writes ``vertebra_level_confusion.csv``, ``vertebra_level_confusion.png``,
``vertebra_level_metrics.json`` and ``vertebra_level_per_image.json`` (per image: the level names
of its ground-truth vertebrae, top of the annotation list first, and the matched predicted level,
null where none matched; for error analysis) to the output folder (atomically).
"""
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators
from detectron2.structures import BoxMode

from vertspine.utils.file_io import write_json

from .build import build_coco_evaluator, register_evaluator
from .config import add_vertebra_level_config
from .gather import gather_on_main
from .vertebra_level_metrics import (
    match_levels,
    vertebra_level_metrics,
    write_confusion_csv,
    write_confusion_png,
)

__all__ = ["VertebraLevelEvaluator", "build_vertebra_level_evaluator"]

logger = logging.getLogger(__name__)


class VertebraLevelEvaluator(DatasetEvaluator):
    """Vertebra-level identification accuracy of one dataset (see the module doc)."""

    def __init__(
        self,
        dataset_name: str,
        *,
        iou_threshold: float = 0.5,
        score_threshold: float = 0.0,
        output_dir: Optional[str] = None,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: a registered dataset with ground-truth boxes.
            iou_threshold: minimum IoU of a detector box matched to a vertebra.
            score_threshold: detector boxes scoring below this are not matched.
            output_dir: folder for the confusion matrix and metrics files (None = none).
            distributed: gather per-image results from all processes before evaluating.
        """
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"TEST.VERTEBRA_LEVEL.IOU_THRESHOLD must be in (0, 1], got {iou_threshold}.")
        self._dataset_name = dataset_name
        self._iou_threshold = float(iou_threshold)
        self._score_threshold = float(score_threshold)
        self._output_dir = output_dir
        self._distributed = distributed
        metadata = MetadataCatalog.get(dataset_name)
        self._class_names = _level_names(metadata)
        self._ground_truth: Optional[Dict[Any, Tuple[np.ndarray, np.ndarray, np.ndarray, int]]] = None
        self._results: List[Dict[str, Any]] = []

    def reset(self) -> None:
        self._results = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Match each image's predictions to its vertebrae; keep (gt levels, matched levels)."""
        ground_truth = self._load_ground_truth()
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            if image_id not in ground_truth:
                raise KeyError(f"image_id {image_id!r} is not in dataset '{self._dataset_name}'.")
            gt_boxes, gt_levels, keep, num_annotations = ground_truth[image_id]
            pred = np.full(len(gt_levels), -1, dtype=np.int64)
            if "instances" in out:
                instances = out["instances"].to("cpu")
                boxes = instances.pred_boxes.tensor.numpy().astype(np.float64)
                classes = instances.pred_classes.numpy().astype(np.int64)
                scores = instances.scores.numpy().astype(np.float64)
                gt_indices = None
                if instances.has("gt_indices"):
                    gt_indices = _remap_to_kept(instances.gt_indices.numpy().astype(np.int64), keep,
                                                num_annotations, image_id)
                    valid = gt_indices > -2  # drop predictions made for crowd annotations
                    boxes, classes, scores, gt_indices = (boxes[valid], classes[valid],
                                                          scores[valid], gt_indices[valid])
                pred = match_levels(gt_boxes, boxes, classes, scores, gt_indices,
                                    iou_threshold=self._iou_threshold,
                                    score_threshold=self._score_threshold)
            self._results.append({"image_id": image_id, "gt": gt_levels, "pred": pred})

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """IDR, IRA, per-level accuracy, off-by-one, MAE; files in the output folder."""
        results = gather_on_main(self._results, self._distributed)
        if results is None:  # not the main process
            return {}
        if not results:
            logger.warning(f"[VertebraLevelEvaluator] no predictions for '{self._dataset_name}'.")
            return {}
        results = sorted(results, key=lambda r: str(r["image_id"]))
        num_classes = self._num_classes()
        metrics, confusion = vertebra_level_metrics(
            [(r["gt"], r["pred"]) for r in results], self._class_names[:num_classes]
        )
        if self._output_dir:
            self._write(metrics, confusion, results)
        logger.info("Vertebra-level results on %s: IDR %.2f, IRA %.2f, off-by-one %.2f, MAE %.3f",
                    self._dataset_name, metrics["IDR"], metrics["IRA"], metrics["off_by_one"], metrics["MAE"])
        return {"vertebra_level": metrics}

    def _num_classes(self) -> int:
        if not self._class_names:
            raise ValueError(f"Dataset '{self._dataset_name}' has no level_names/thing_classes metadata.")
        return len(self._class_names)

    def _load_ground_truth(self) -> Dict[Any, Tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        """{image_id: (boxes [G, 4] XYXY, levels [G], kept annotation indices [G], number of
        annotations)}, crowd annotations left out; cached."""
        if self._ground_truth is None:
            ground_truth = {}
            for record in DatasetCatalog.get(self._dataset_name):
                annotations = record.get("annotations", [])
                kept = [(i, a) for i, a in enumerate(annotations) if not a.get("iscrowd", 0)]
                boxes = np.asarray(
                    [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for _, a in kept],
                    dtype=np.float64,
                ).reshape(-1, 4)
                levels = np.asarray([a["category_id"] for _, a in kept], dtype=np.int64)
                ground_truth[record["image_id"]] = (
                    boxes, levels, np.asarray([i for i, _ in kept], np.int64), len(annotations))
            self._ground_truth = ground_truth
            if not self._class_names:
                # loading sets thing_classes
                self._class_names = _level_names(MetadataCatalog.get(self._dataset_name))
        return self._ground_truth

    def _write(self, metrics: Dict[str, float], confusion: np.ndarray,
               results: List[Dict[str, Any]]) -> None:
        names = self._class_names
        folder = self._output_dir
        os.makedirs(folder, exist_ok=True)
        write_confusion_csv(os.path.join(folder, "vertebra_level_confusion.csv"), confusion, names)
        title = (f"{self._dataset_name}: IDR {metrics['IDR']:.1f}%, IRA {metrics['IRA']:.1f}%, "
                 f"off-by-one {metrics['off_by_one']:.1f}%")
        write_confusion_png(os.path.join(folder, "vertebra_level_confusion.png"), confusion, names, title)
        write_json(os.path.join(folder, "vertebra_level_metrics.json"), {
            "dataset": self._dataset_name, "iou_threshold": self._iou_threshold,
            "score_threshold": self._score_threshold, "metrics": metrics})
        per_image = [{"image_id": r["image_id"], "gt": [names[int(k)] for k in r["gt"]],
                      "pred": [names[int(k)] if k >= 0 else None for k in r["pred"]]}
                     for r in results]
        write_json(os.path.join(folder, "vertebra_level_per_image.json"), per_image, indent=None)


def _level_names(metadata) -> List[str]:
    """The dataset's ``level_names``, else its ``thing_classes`` (contiguous-id order)."""
    return list(metadata.get("level_names", None) or metadata.get("thing_classes", []))


def _remap_to_kept(gt_indices: np.ndarray, kept: np.ndarray, num_annotations: int,
                   image_id: Any) -> np.ndarray:
    """Indices into the record's annotation list -> indices into the kept (non-crowd) ones;
    -1 stays -1 (detector box), a crowd annotation's index becomes -2 (prediction dropped).

    Raises:
        ValueError: an index beyond the record's annotation list.
    """
    if len(gt_indices) and gt_indices.max() >= num_annotations:
        raise ValueError(f"Image {image_id!r}: a prediction has gt_index {int(gt_indices.max())}, "
                         f"but the record has {num_annotations} annotations.")
    position = {int(index): k for k, index in enumerate(kept)}
    return np.asarray([position.get(int(i), -2) if i >= 0 else -1 for i in gt_indices], dtype=np.int64)


def _settings(cfg: CfgNode) -> CfgNode:
    """``cfg.TEST.VERTEBRA_LEVEL``, or its defaults when the config lacks the node."""
    if "VERTEBRA_LEVEL" in cfg.TEST:
        return cfg.TEST.VERTEBRA_LEVEL
    defaults = CfgNode({"TEST": CfgNode()})
    return add_vertebra_level_config(defaults).TEST.VERTEBRA_LEVEL


@register_evaluator("vertebra_level")
def build_vertebra_level_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str) -> DatasetEvaluator:
    """The level evaluator, preceded by COCO box AP when ``TEST.VERTEBRA_LEVEL.WITH_COCO_AP``."""
    settings = _settings(cfg)
    level = VertebraLevelEvaluator(
        dataset_name,
        iou_threshold=settings.IOU_THRESHOLD,
        score_threshold=settings.SCORE_THRESHOLD,
        output_dir=output_folder,
    )
    if settings.WITH_COCO_AP:
        return DatasetEvaluators([build_coco_evaluator(cfg, dataset_name, output_folder), level])
    return level
