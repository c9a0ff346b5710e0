"""Image-level classification metrics on NumPy arrays, with seeded bootstrap intervals.

Binary metrics take labels in {0, 1} and scores = p(positive); a prediction is positive when
``score >= threshold``. AUROC is the Mann-Whitney statistic (ties count one half), equal to
``sklearn.metrics.roc_auc_score``. Undefined values (e.g. sensitivity without positives, AUROC
with one class) are NaN, not 0. Everything is a fraction in [0, 1] here; the evaluator reports
percentages.

Bootstrap: ``num_resamples`` resamples of the images with replacement (NumPy
``default_rng(seed)``, one ``integers(0, n, n)`` draw per resample); the 95% interval is
``np.nanpercentile(values, [2.5, 97.5])`` (linear interpolation) over the resamples where the
metric is defined. (VinDr-SpineXR's evaluator took ``values[-bound]`` as the upper bound: one
place off, and the minimum when ``bound == 0``.) The threshold is held fixed across resamples.
SciPy and scikit-learn are imported by the functions that use them (about 0.4 s at import).
"""
from typing import Callable, Dict, Tuple

import numpy as np

__all__ = [
    "BINARY_THRESHOLD_METRICS",
    "auroc",
    "binary_metrics",
    "bootstrap_intervals",
    "confusion_metrics",
    "multiclass_metrics",
    "percentile_interval",
    "youden_threshold",
]

BINARY_THRESHOLD_METRICS = ("sensitivity", "specificity", "precision", "F1", "accuracy")
_CHUNK = 256  # resamples evaluated together


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Area under the ROC curve along the last axis.

    Args:
        labels: [..., n] in {0, 1}.
        scores: [..., n] higher = more positive.
    Returns:
        [...] AUROC; NaN where only one class is present.
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    ranks = rankdata(np.asarray(scores, float), axis=-1)
    n_pos = labels.sum(-1)
    n_neg = labels.shape[-1] - n_pos
    rank_sum = np.where(labels, ranks, 0.0).sum(-1)
    return _divide(rank_sum - n_pos * (n_pos + 1) / 2.0, n_pos * n_neg)


def confusion_metrics(labels: np.ndarray, predicted: np.ndarray) -> Dict[str, np.ndarray]:
    """Threshold metrics along the last axis of boolean ``labels`` and ``predicted``."""
    tp = (labels & predicted).sum(-1)
    fp = (~labels & predicted).sum(-1)
    fn = (labels & ~predicted).sum(-1)
    tn = (~labels & ~predicted).sum(-1)
    return {
        "sensitivity": _divide(tp, tp + fn),
        "specificity": _divide(tn, tn + fp),
        "precision": _divide(tp, tp + fp),
        "F1": _divide(2 * tp, 2 * tp + fp + fn),
        "accuracy": _divide(tp + tn, tp + tn + fp + fn),
    }


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Dict[str, float]:
    """AUROC and the threshold metrics (sensitivity, specificity, precision, F1, accuracy).

    Args:
        labels: [n] in {0, 1}.
        scores: [n] p(positive).
        threshold: positive when ``score >= threshold``.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, float)
    metrics = {"AUROC": auroc(labels, scores)}
    metrics.update(confusion_metrics(labels, scores >= threshold))
    return {k: float(v) for k, v in metrics.items()}


def youden_threshold(labels: np.ndarray, scores: np.ndarray) -> Tuple[float, float]:
    """The score threshold maximising Youden's J = sensitivity + specificity - 1.

    Candidates are the observed scores (``sklearn.metrics.roc_curve``, all points kept); ties
    in J go to the highest threshold.

    Returns:
        (threshold, J). Positive when ``score >= threshold``.
    Raises:
        ValueError: only one class is present.
    """
    from sklearn.metrics import roc_curve

    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        raise ValueError("Youden's J needs both classes; the labels are all "
                         f"{labels.min()}. Choose the threshold on a split with both.")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    best = int(np.argmax(j))
    return float(thresholds[best]), float(j[best])


def multiclass_metrics(labels: np.ndarray, probs: np.ndarray) -> Dict[str, np.ndarray]:
    """Accuracy, balanced accuracy (mean per-class recall over the classes present) and macro
    one-vs-rest AUROC (mean over classes, NaN when a class is absent or alone), along the
    leading axes.

    Args:
        labels: [..., n] integer classes 0..C-1.
        probs: [..., n, C] class probabilities.
    """
    labels = np.asarray(labels)
    probs = np.asarray(probs, float)
    num_classes = probs.shape[-1]
    predicted = probs.argmax(-1)
    one_hot = labels[..., None] == np.arange(num_classes)  # [..., n, C]
    correct = (predicted == labels)[..., None] & one_hot
    recall = _divide(correct.sum(-2), one_hot.sum(-2))  # [..., C]
    with np.errstate(invalid="ignore"):
        balanced = np.nanmean(np.where(one_hot.sum(-2) > 0, recall, np.nan), -1)
    per_class = auroc(np.moveaxis(one_hot, -1, -2), np.moveaxis(probs, -1, -2))  # [..., C]
    return {"accuracy": (predicted == labels).mean(-1), "balanced_accuracy": balanced,
            "AUROC": per_class.mean(-1)}


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> Tuple[float, float]:
    """(low, high) percentile interval of the finite ``values`` (NaN, NaN when none)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_intervals(
    metric_fn: Callable[[np.ndarray], Dict[str, np.ndarray]], num_items: int,
    num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
) -> Dict[str, Tuple[float, float]]:
    """Percentile bootstrap intervals of every metric ``metric_fn`` returns.

    Args:
        metric_fn: ``(index [B, n]) -> {name: [B] values}`` for B resamples given as index
            arrays into the n items (vectorised over B).
        num_items: n.
        num_resamples: B in total.
        seed: seed of ``np.random.default_rng``.
        confidence: e.g. 0.95.
    Returns:
        name -> (low, high).
    """
    rng = np.random.default_rng(seed)
    collected: Dict[str, list] = {}
    for start in range(0, num_resamples, _CHUNK):
        count = min(_CHUNK, num_resamples - start)
        index = np.stack([rng.integers(0, num_items, num_items) for _ in range(count)])
        for name, values in metric_fn(index).items():
            collected.setdefault(name, []).append(np.asarray(values, float))
    return {name: percentile_interval(np.concatenate(chunks), confidence)
            for name, chunks in collected.items()}
