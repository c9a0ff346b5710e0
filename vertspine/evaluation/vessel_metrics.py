"""Metrics of one binary 3D vessel segmentation against its ground truth (pure functions).

Every function takes boolean-able arrays ``pred`` and ``gt`` of the same shape [X, Y, Z] (any
array axis order, as long as both share it), and where distances enter, ``spacing``: the voxel
size in mm along each array axis, in that order. A metric that is undefined for a case (a ratio
0/0, a distance to a surface that does not exist, AUROC on a single-class ground truth) is
**skipped**: returned as ``None``, never as NaN and never as a made-up value, so that a mean can
say over how many cases it was taken.

Edge cases (P = predicted voxels, G = ground-truth voxels):

=================  ==========  ==========  ==================================================
metric             P, G empty  P empty     G empty (P not)
=================  ==========  ==========  ==================================================
Dice, IoU          1           0           0
precision          1           skipped     0
recall             1           0           skipped
clDice             1           0           0
HD95               0 mm        skipped     skipped
NSD                1           0           0
Betti errors       computed as defined (an empty volume has beta = 0, 0, 0)
AUROC, AP          skipped whenever G is empty or fills the volume (one class)
=================  ==========  ==========  ==================================================

Definitions follow vesselFM's evaluator (``seg/utils/evaluation.py``) and the TopCoW Betti
metrics; the differences are: skeletons come from :func:`skimage.morphology.skeletonize`
(``skeletonize_3d`` is deprecated), the beta_2 error is reported too, HD95 and NSD are added
(MONAI, with the spacing), and nothing crashes on single-class or empty volumes.
"""
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "betti_errors",
    "betti_numbers",
    "centerline_dice",
    "hausdorff_distance_95",
    "normalized_surface_dice",
    "overlap_metrics",
    "probability_metrics",
    "vessel_metrics",
]

Score = Optional[float]  # None = skipped (undefined for this case)

# Every key vessel_metrics returns, in order; ratios in [0, 1], HD95 in mm, Betti values counts.
METRIC_NAMES: Tuple[str, ...] = (
    "Dice", "IoU", "precision", "recall", "clDice", "Tprec", "Tsens", "HD95", "NSD",
    "AUROC", "AP", "betti0_error", "betti1_error", "betti2_error",
    "betti0_pred", "betti1_pred", "betti2_pred", "betti0_gt", "betti1_gt", "betti2_gt",
)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Both as bool arrays; ValueError naming the shapes when they are not one 3D shape."""
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"Vessel metrics need a 3D prediction and ground truth of one shape; got "
                         f"{pred.shape} and {gt.shape}. Give both in the frame of the ground truth.")
    return pred, gt


def _check_spacing(spacing: Sequence[float]) -> Tuple[float, float, float]:
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing {spacing}: give 3 positive finite voxel sizes in mm, one per "
                         "array axis.")
    return spacing


def _ratio(numerator: int, denominator: int) -> Score:
    return float(numerator / denominator) if denominator else None


def overlap_metrics(pred: np.ndarray, gt: np.ndarray) -> Dict[str, Score]:
    """Dice, IoU, precision and recall of the foreground voxels.

    ``Dice = 2|P&G| / (|P|+|G|)``, ``IoU = |P&G| / |P|G|``, ``precision = |P&G| / |P|``,
    ``recall = |P&G| / |G|``; all 1 when both masks are empty (see the module's edge-case table).

    Args:
        pred, gt: [X, Y, Z] masks (nonzero = vessel).
    Returns:
        ``{"Dice", "IoU", "precision", "recall"}`` in [0, 1] or None (skipped).
    """
    pred, gt = _check_pair(pred, gt)
    tp, n_pred, n_gt = np.count_nonzero(pred & gt), np.count_nonzero(pred), np.count_nonzero(gt)
    if n_pred == 0 and n_gt == 0:
        return {"Dice": 1.0, "IoU": 1.0, "precision": 1.0, "recall": 1.0}
    return {"Dice": _ratio(2 * tp, n_pred + n_gt), "IoU": _ratio(tp, n_pred + n_gt - tp),
            "precision": _ratio(tp, n_pred), "recall": _ratio(tp, n_gt)}


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """Lee's 3D skeleton of a non-empty mask; a mask thinning removes entirely (a 2x2x2 block
    has no skeleton) is its own centre line, so that clDice stays defined."""
    from skimage.morphology import skeletonize

    skeleton = skeletonize(mask)
    return skeleton.astype(bool) if skeleton.any() else mask


def centerline_dice(pred: np.ndarray, gt: np.ndarray) -> Dict[str, float]:
    """clDice (Shit et al., CVPR 2021) with 3D skeletons S from scikit-image.

    ``Tprec = |S(P) & G| / |S(P)|`` (the predicted centre line inside the ground truth),
    ``Tsens = |S(G) & P| / |S(G)|`` (the true centre line covered by the prediction),
    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` (0 when both are 0). The clDice reference code,
    and vesselFM after it, name these two the other way round; clDice is the same.
    Both empty: all 1; one empty: all 0.

    Args:
        pred, gt: [X, Y, Z] masks.
    Returns:
        ``{"clDice", "Tprec", "Tsens"}`` in [0, 1].
    """
    pred, gt = _check_pair(pred, gt)
    if not pred.any() or not gt.any():
        value = float(not pred.any() and not gt.any())
        return {"clDice": value, "Tprec": value, "Tsens": value}
    skeleton_pred, skeleton_gt = _skeleton(pred), _skeleton(gt)
    tprec = _ratio(np.count_nonzero(skeleton_pred & gt), np.count_nonzero(skeleton_pred))
    tsens = _ratio(np.count_nonzero(skeleton_gt & pred), np.count_nonzero(skeleton_gt))
    cldice = 2.0 * tprec * tsens / (tprec + tsens) if tprec + tsens else 0.0
    return {"clDice": cldice, "Tprec": tprec, "Tsens": tsens}


def betti_numbers(mask: np.ndarray) -> Tuple[int, int, int]:
    """Betti numbers of a 3D mask as the TopCoW metrics (and vesselFM) define them.

    On the mask padded by one background voxel on every side:
    beta_0 = foreground components (26-connectivity), beta_2 = background components
    (6-connectivity) - 1 (cavities), chi = ``skimage.measure.euler_number(connectivity=3)``,
    beta_1 = beta_0 + beta_2 - chi (tunnels, i.e. loops of the vessel tree).

    Args:
        mask: [X, Y, Z] mask.
    Returns:
        (beta_0, beta_1, beta_2).
    """
    from skimage.measure import euler_number, label

    padded = np.pad(np.asarray(mask).astype(bool), 1)
    beta0 = int(label(padded, connectivity=3).max())
    beta2 = int(label(~padded, connectivity=1).max()) - 1
    chi = int(euler_number(padded, connectivity=3))
    return beta0, beta0 + beta2 - chi, beta2


def betti_errors(pred: np.ndarray, gt: np.ndarray) -> Dict[str, int]:
    """``|beta_i(P) - beta_i(G)|`` for i = 0, 1, 2, and each mask's Betti numbers.

    Returns:
        ``{"betti{i}_error", "betti{i}_pred", "betti{i}_gt"}`` for i in 0, 1, 2 (counts).
    """
    pred, gt = _check_pair(pred, gt)
    betti_pred, betti_gt = betti_numbers(pred), betti_numbers(gt)
    scores = {}
    for i, (p, g) in enumerate(zip(betti_pred, betti_gt)):
        scores.update({f"betti{i}_error": abs(p - g), f"betti{i}_pred": p, f"betti{i}_gt": g})
    return scores


def _one_channel(mask: np.ndarray):
    """[X, Y, Z] bool -> [1, 1, X, Y, Z] float tensor, MONAI's batch-first one-channel layout."""
    import torch

    return torch.as_tensor(mask, dtype=torch.float32)[None, None]


def hausdorff_distance_95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> Score:
    """95th-percentile symmetric Hausdorff distance between the mask surfaces, in mm.

    MONAI's ``compute_hausdorff_distance(percentile=95, spacing=spacing)``: the larger of the two
    directed 95th percentiles of the distances from one mask's surface voxels to the other's.

    Args:
        pred, gt: [X, Y, Z] masks.
        spacing: mm per array axis.
    Returns:
        the distance in mm; 0 when both are empty; None (skipped) when exactly one is empty.
    """
    from monai.metrics import compute_hausdorff_distance

    pred, gt = _check_pair(pred, gt)
    spacing = _check_spacing(spacing)
    if not pred.any() or not gt.any():
        return 0.0 if not pred.any() and not gt.any() else None
    distance = compute_hausdorff_distance(_one_channel(pred), _one_channel(gt),
                                          include_background=True, percentile=95,
                                          spacing=spacing)
    return float(distance.item())


def normalized_surface_dice(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float],
                            tolerance_mm: float) -> float:
    """Normalised surface Dice: the fraction of both surfaces within ``tolerance_mm`` (<=) of
    the other surface (MONAI ``compute_surface_dice``, surface voxels, distances in mm).

    Args:
        pred, gt: [X, Y, Z] masks.
        spacing: mm per array axis.
        tolerance_mm: the accepted deviation tau in mm (>= 0).
    Returns:
        NSD in [0, 1]; 1 when both are empty, 0 when exactly one is.
    """
    from monai.metrics import compute_surface_dice

    pred, gt = _check_pair(pred, gt)
    spacing = _check_spacing(spacing)
    if not np.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise ValueError(f"NSD tolerance {tolerance_mm} mm: give a finite value >= 0.")
    if not pred.any() or not gt.any():
        return float(not pred.any() and not gt.any())
    nsd = compute_surface_dice(_one_channel(pred), _one_channel(gt), [float(tolerance_mm)],
                               include_background=True, spacing=spacing)
    return float(nsd.item())


def probability_metrics(prob: np.ndarray, gt: np.ndarray) -> Dict[str, Score]:
    """Voxel-wise AUROC and average precision (scikit-learn) of vessel probabilities.

    Args:
        prob: [X, Y, Z] vessel probabilities (any monotone score).
        gt: [X, Y, Z] mask of the same shape.
    Returns:
        ``{"AUROC", "AP"}`` in [0, 1]; both None (skipped) when the ground truth has one class.
    Raises:
        ValueError: shapes differ, or ``prob`` holds non-finite values.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    prob = np.asarray(prob, dtype=np.float64)
    _, gt = _check_pair(prob, gt)
    if not np.isfinite(prob).all():
        raise ValueError("Vessel probabilities hold NaN or inf; the model output is broken.")
    labels = gt.ravel()
    if labels.all() or not labels.any():
        return {"AUROC": None, "AP": None}
    scores = prob.ravel()
    return {"AUROC": float(roc_auc_score(labels, scores)),
            "AP": float(average_precision_score(labels, scores))}


def vessel_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *,
                   prob: Optional[np.ndarray] = None,
                   nsd_tolerance_mm: float = 1.0) -> Dict[str, Score]:
    """Every metric of :data:`METRIC_NAMES` for one case.

    Args:
        pred: [X, Y, Z] binary prediction.
        gt: [X, Y, Z] binary ground truth.
        spacing: mm per array axis.
        prob: [X, Y, Z] vessel probabilities for AUROC/AP; None skips them.
        nsd_tolerance_mm: NSD's tolerance in mm.
    Returns:
        ``{name: value or None (skipped)}`` in :data:`METRIC_NAMES` order.
    """
    pred, gt = _check_pair(pred, gt)
    scores = {**overlap_metrics(pred, gt), **centerline_dice(pred, gt),
              "HD95": hausdorff_distance_95(pred, gt, spacing),
              "NSD": normalized_surface_dice(pred, gt, spacing, nsd_tolerance_mm),
              **(probability_metrics(prob, gt) if prob is not None else {"AUROC": None, "AP": None}),
              **betti_errors(pred, gt)}
    return {name: scores[name] for name in METRIC_NAMES}
