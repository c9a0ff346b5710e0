"""Vertebra-level identification metrics: matching predictions to vertebrae, IDR/IRA, confusion.

Matching (one image, :func:`match_levels`): a prediction whose ``gt_index`` is >= 0 was made
for that ground-truth vertebra (its box prompted the model), so it is matched by identity;
when several predictions name one vertebra (e.g. VertFound's top-k (box, level) pairs), the
highest-scoring one counts. Predictions with ``gt_index`` -1 (or no ``gt_indices`` at all: a
detector) are matched to the vertebrae left over by IoU: predictions with an identical box are
first reduced to their highest-scoring one, those scoring below ``score_threshold`` dropped,
then matched as COCO matches detections (pycocotools ``COCOeval.evaluateImg``): greedily in
descending score order (ties: the earlier prediction first), each prediction takes the
still-unmatched vertebra of highest IoU among those with IoU >= ``iou_threshold`` (ties: the
first vertebra, where pycocotools takes the last). A high-scoring box therefore keeps its
vertebra against a low-scoring box of higher IoU; the summed IoU is not maximised. A vertebra
without a match has no predicted level (-1).

Metrics (dataset, :func:`vertebra_level_metrics`), in percent unless said otherwise:
- ``IDR``: vertebrae whose matched prediction has the right level / all vertebrae (unmatched
  ones count as wrong);
- ``IRA``: images whose vertebrae are all right / images with at least one vertebra;
- ``matched``: vertebrae with a matched prediction / all vertebrae;
- ``off_by_one``: vertebrae predicted one level off (|pred - gt| == 1) / all vertebrae;
- ``MAE``: mean |pred - gt| in levels over matched vertebrae;
- ``acc-<level>``: IDR restricted to that ground-truth level (levels with ground truth only);
- ``num_vertebrae``, ``num_images``: the counts behind them.
IDR + off_by_one + (other wrong levels) + (100 - matched) = 100. The confusion matrix has one
row per ground-truth level and one column per predicted level plus a last "unmatched" column.
"""
import csv
import io
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.structures import Boxes, pairwise_iou

from vertspine.utils.file_io import atomic_write

__all__ = [
    "match_levels",
    "vertebra_level_metrics",
    "write_confusion_csv",
    "write_confusion_png",
]


def match_levels(
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    pred_classes: np.ndarray,
    scores: np.ndarray,
    gt_indices: Optional[np.ndarray] = None,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> np.ndarray:
    """The predicted level of each ground-truth vertebra of one image (see module doc).

    Args:
        gt_boxes: [G, 4] XYXY absolute pixels.
        pred_boxes: [P, 4] XYXY absolute pixels, same frame.
        pred_classes: [P] int, 0-based contiguous levels.
        scores: [P] float.
        gt_indices: [P] int, index into the G vertebrae, -1 for a detector box; None = all -1.
        iou_threshold: minimum IoU of an IoU match.
        score_threshold: detector boxes scoring below this are not matched.
    Returns:
        [G] int64: the matched prediction's level, -1 where unmatched.
    Raises:
        ValueError: a gt_index >= G.
    """
    num_gt = len(gt_boxes)
    levels = np.full(num_gt, -1, dtype=np.int64)
    best_score = np.full(num_gt, -np.inf)
    if gt_indices is None:
        gt_indices = np.full(len(pred_boxes), -1, dtype=np.int64)
    if len(gt_indices) and gt_indices.max() >= num_gt:
        raise ValueError(f"A prediction has gt_index {int(gt_indices.max())}, but the image has "
                         f"{num_gt} ground-truth annotations.")
    for p in np.flatnonzero(gt_indices >= 0):
        g = gt_indices[p]
        if scores[p] > best_score[g]:
            best_score[g], levels[g] = scores[p], pred_classes[p]
    free_gt = np.flatnonzero(levels < 0)
    detector = np.flatnonzero((gt_indices < 0) & (scores >= score_threshold))
    if free_gt.size == 0 or detector.size == 0:
        return levels
    detector = _best_per_identical_box(pred_boxes, scores, detector)
    iou = pairwise_iou(Boxes(torch.as_tensor(gt_boxes[free_gt], dtype=torch.float32)),
                       Boxes(torch.as_tensor(pred_boxes[detector], dtype=torch.float32))).numpy()
    for r, c in _greedy_by_score(iou, scores[detector], iou_threshold):
        levels[free_gt[r]] = pred_classes[detector[c]]
    return levels


def _greedy_by_score(iou: np.ndarray, scores: np.ndarray,
                     iou_threshold: float) -> List[Tuple[int, int]]:
    """COCO's greedy matching of an IoU matrix [G, P]: the (gt row, prediction column) pairs.

    Predictions in descending score (stable), each to the unmatched row of highest IoU >=
    ``iou_threshold`` (first row on ties), or to none.
    """
    free = np.ones(iou.shape[0], dtype=bool)
    pairs = []
    for c in np.argsort(-scores, kind="stable"):
        allowed = free & (iou[:, c] >= iou_threshold)
        if allowed.any():
            r = int(np.argmax(np.where(allowed, iou[:, c], -np.inf)))
            free[r] = False
            pairs.append((r, int(c)))
    return pairs


def _best_per_identical_box(boxes: np.ndarray, scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Of ``candidates`` sharing exactly the same box, the index of the highest-scoring one."""
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    _, first = np.unique(boxes[order], axis=0, return_index=True)
    return np.sort(order[first])


def vertebra_level_metrics(
    per_image: Sequence[Tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]
) -> Tuple[Dict[str, float], np.ndarray]:
    """Dataset metrics from (gt levels [G], matched levels [G] with -1) of every image.

    Returns:
        (metrics, confusion): see the module doc; confusion is int64 [C, C + 1].
    """
    num_classes = len(class_names)
    gt = np.concatenate([np.asarray(g, dtype=np.int64) for g, _ in per_image] or [np.zeros(0, np.int64)])
    pred = np.concatenate([np.asarray(p, dtype=np.int64) for _, p in per_image] or [np.zeros(0, np.int64)])
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes or pred.max() >= num_classes):
        raise ValueError(f"Levels must lie in 0..{num_classes - 1}; got ground truth "
                         f"{gt.min()}..{gt.max()} and predictions up to {pred.max()}.")
    confusion = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
    np.add.at(confusion, (gt, np.where(pred < 0, num_classes, pred)), 1)
    matched = pred >= 0
    correct = pred == gt
    images = [(np.asarray(g), np.asarray(p)) for g, p in per_image if len(g)]
    total = max(gt.size, 1)
    metrics = {
        "IDR": 100.0 * correct.sum() / total,
        "IRA": 100.0 * sum(bool(np.all(p == g)) for g, p in images) / max(len(images), 1),
        "matched": 100.0 * matched.sum() / total,
        "off_by_one": 100.0 * (matched & (np.abs(pred - gt) == 1)).sum() / total,
        "MAE": float(np.abs(pred - gt)[matched].mean()) if matched.any() else float("nan"),
        "num_vertebrae": float(gt.size),
        "num_images": float(len(images)),
    }
    for k, name in enumerate(class_names):
        count = confusion[k].sum()
        if count:
            metrics[f"acc-{name}"] = 100.0 * confusion[k, k] / count
    return {key: float(value) for key, value in metrics.items()}, confusion


def write_confusion_csv(path: str, confusion: np.ndarray, class_names: Sequence[str]) -> None:
    """Rows: ground-truth levels; columns: predicted levels, then "unmatched". Atomic."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["gt \\ pred", *class_names, "unmatched"])
    for name, row in zip(class_names, confusion):
        writer.writerow([name, *[int(v) for v in row]])
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


def write_confusion_png(path: str, confusion: np.ndarray, class_names: Sequence[str], title: str) -> None:
    """Row-normalised confusion matrix as a heat map with counts (matplotlib Agg). Atomic."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = confusion.sum(axis=1, keepdims=True)
    rates = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = 2.0 + 0.32 * len(class_names)
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    columns: List[str] = [*class_names, "none"]
    axes.set_xticks(range(len(columns)), columns, rotation=90, fontsize=7)
    axes.set_yticks(range(len(class_names)), class_names, fontsize=7)
    axes.set_xlabel("predicted level")
    axes.set_ylabel("ground-truth level")
    axes.set_title(title, fontsize=9)
    for (r, c), count in np.ndenumerate(confusion):
        if count:
            axes.text(c, r, str(count), ha="center", va="center", fontsize=5,
                      color="white" if rates[r, c] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the row")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    with atomic_write(path, "wb") as f:
        f.write(buffer.getvalue())
