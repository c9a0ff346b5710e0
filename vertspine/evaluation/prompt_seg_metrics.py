"""DSC and NSD of box-prompted segmentation, per label (CVPR 2024 "MedSAM on laptop" metrics,
without the defects of ``evaluation/compute_metrics.py``), and the merge of box masks into one
label map.

Definitions, for one case (a 2D image, a 3D volume or one slice of it) with integer label maps
``gt`` and ``pred`` of the same shape:

- **Labels scored**: every non-zero value present in ``gt`` or ``pred``. A label in only one of
  them scores DSC 0 and NSD 0 (a missed object, or a predicted one that is not there). Values in
  ``1..max(gt)`` absent from both (gaps in the numbering) are skipped and counted
  (:attr:`CaseScores.skipped_labels`); the original averaged NaN for them, which made the case NaN.
  A case with no label in either map has no score (NaN) and is reported, never averaged.
- **DSC** of label l: ``2 |P_l & G_l| / (|P_l| + |G_l|)``.
- **NSD** of label l at tolerance tau: DeepMind's surface Dice (Nikolov et al. 2021), computed by
  MONAI's :func:`monai.metrics.compute_surface_dice` with ``use_subvoxels=True``: surface elements
  sit on the corners between voxels, weighted by their area (3D) or length (2D) for the given
  spacing, distances are Euclidean in the units of the spacing, and
  ``NSD = (|S_G within tau of S_P| + |S_P within tau of S_G|) / (|S_G| + |S_P|)``. This equals
  DeepMind's ``surface_distance`` package (checked on the test masks: the 2D square shifted by
  3 px, 0.603017 both; the anisotropic 3D box shifted by one slice, 0.812278 both, to 1e-7),
  and the test values are also derived by hand. With ``use_subvoxels=False`` MONAI counts edge
  pixels instead, which is not the challenge's definition.
- **Spacing** is given in the arrays' axis order (a (D, H, W) volume takes (z, y, x) spacing),
  tau in the same unit: 2 mm for 3D, 2 px for 2D (unit spacing). The challenge's npz files store
  ``spacing`` in SimpleITK's (x, y, z) order, and its script applied it to (z, y, x) arrays
  unreversed; :func:`spacing_in_array_order` reverses it.
- **2D NSD**: ``planar_nsd="contour"`` (default) measures the 2D contour. The challenge's script
  scored 2D images as one-slice volumes (``planar_nsd="slab"``): the surface then includes both
  flat faces, so NSD rewards area overlap as well (the 3-px-shifted square: 0.9367 as a slab,
  0.6030 as a contour). Use "slab" only to compare with the challenge leaderboard.
- **DSC gate** (``gate_dsc``, off by default): the challenge set NSD to 0 for a case whose mean
  DSC is not above 0.2 (a time saving). Off, the NSD is always the true value; ``gate_dsc=0.2``
  reproduces the challenge's numbers.
- Per case: the mean over its scored labels; per dataset: the mean over cases (the challenge's).
- **Voxel errors** per case (not a challenge metric; where the errors are): missed (labelled ->
  background), spurious (background -> labelled) and swapped (labelled with another label).
"""
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

__all__ = ["CaseScores", "PLANAR_NSD_MODES", "SPACING_ORDERS", "case_scores", "dsc_per_label",
           "INTENSITY_SIGMA", "merge_box_masks", "nsd_per_label", "OVERLAP_POLICIES",
           "overlap_scores", "reference_intensity", "spacing_in_array_order"]

PLANAR_NSD_MODES = ("contour", "slab")
# "xyz": SimpleITK's order, the reverse of the (D, H, W) arrays (the challenge's files); "zyx"
SPACING_ORDERS = ("xyz", "zyx")
_MAX_LABEL = np.iinfo(np.uint16).max
# Where the masks of several boxes overlap: "iou", the higher predicted IoU wins; "smaller", the
# mask with fewer pixels wins (a structure nested inside another keeps its pixels); "intensity",
# each contested pixel goes to the box whose reference intensity is nearest the pixel's
# (:func:`overlap_scores`).
OVERLAP_POLICIES = ("iou", "smaller", "intensity")
INTENSITY_SIGMA = 0.7  # px: in-plane gaussian smoothing of the image before "intensity" compares


@dataclass
class CaseScores:
    """The scores of one case.

    Attributes:
        labels: [L] int64, the labels scored (present in the ground truth or the prediction).
        dsc: [L] DSC per label in [0, 1].
        nsd: [L] NSD per label in [0, 1] (0 for every label when ``gated``).
        skipped_labels: values in 1..max(gt) absent from both maps (not scored).
        gated: the case's mean DSC was not above ``gate_dsc``, so its NSD was set to 0.
        missed: voxels (pixels) labelled in the ground truth and background in the prediction.
        spurious: voxels of background in the ground truth and labelled in the prediction.
        swapped: voxels labelled in both, with different labels (a box's mask took a
            neighbour's voxels, or the overlap rule gave them to the wrong box).
    """

    labels: np.ndarray
    dsc: np.ndarray
    nsd: np.ndarray
    skipped_labels: int = 0
    gated: bool = False
    missed: int = 0
    spurious: int = 0
    swapped: int = 0

    @property
    def mean_dsc(self) -> float:
        """Mean DSC over the scored labels; NaN when there is none."""
        return float(self.dsc.mean()) if len(self.labels) else float("nan")

    @property
    def mean_nsd(self) -> float:
        """Mean NSD over the scored labels; NaN when there is none."""
        return float(self.nsd.mean()) if len(self.labels) else float("nan")


def _grey(image: np.ndarray) -> np.ndarray:
    """[H, W] or [H, W, 3] (the channel mean) -> float64 [H, W]."""
    image = np.asarray(image, np.float64)
    return image.mean(axis=-1) if image.ndim == 3 and image.shape[-1] == 3 else image


def reference_intensity(image: np.ndarray, mask: np.ndarray) -> float:
    """A box's reference intensity for the "intensity" overlap policy: the median of the image
    (its original values, e.g. HU; the channel mean of an RGB image) over the box's mask.

    Args:
        image: [H, W] or [H, W, 3]; mask: bool [H, W], not empty.
    Raises:
        ValueError: an empty mask (it has no intensity).
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("reference_intensity: the mask is empty.")
    return float(np.median(_grey(image)[mask]))


def overlap_scores(masks: np.ndarray, ious: np.ndarray, policy: str,
                   image: Optional[np.ndarray] = None,
                   references: Optional[Sequence[float]] = None) -> np.ndarray:
    """The priority of each mask where masks overlap (the higher wins; :data:`OVERLAP_POLICIES`).

    "intensity" scores each pixel: minus the distance between the image, smoothed in-plane by a
    gaussian of :data:`INTENSITY_SIGMA` px, and the box's reference intensity
    (:func:`reference_intensity` of its own mask unless ``references`` are given: 3D
    propagation takes each box's reference on its middle slice). A structure partly covered by
    another (a later one overwrote it, or it wraps around it) has a box holding both, and the
    masks of both boxes may claim the covered part: the pixel goes to the structure whose
    intensity it has. It assumes that touching structures differ in intensity (true of the
    phantom, where each structure has one HU value; on real images it is a prior to check).

    Args:
        masks: [B, H, W] bool (or [B, *spatial] for "iou" and "smaller").
        ious: [B] predicted IoU.
        policy: one of :data:`OVERLAP_POLICIES`.
        image: [H, W] or [H, W, 3] original values ("intensity" only).
        references: [B] reference intensities ("intensity"; default: from each mask).
    Returns:
        float64 [B] (the IoU, or minus the mask's pixel count), or [B, H, W] for "intensity".
    Raises:
        ValueError: an unknown policy, "intensity" without an image or with a reference
            missing for a non-empty mask.
    """
    if policy not in OVERLAP_POLICIES:
        raise ValueError(f"Overlap policy {policy!r} is not one of {OVERLAP_POLICIES}.")
    masks = np.asarray(masks, bool)
    if policy == "iou":
        return np.asarray(ious, np.float64).reshape(-1)
    if policy == "smaller":
        return -masks.sum(axis=tuple(range(1, masks.ndim))).astype(np.float64)
    if image is None:
        raise ValueError("The 'intensity' overlap policy needs the image.")
    grey = _grey(image)
    if references is None:
        references = [reference_intensity(grey, mask) if mask.any() else np.nan
                      for mask in masks]
    references = np.asarray(references, np.float64).reshape(-1, 1, 1)
    if np.isnan(references[masks.any(axis=(1, 2))]).any():
        raise ValueError("The 'intensity' overlap policy needs a reference intensity for every "
                         "non-empty mask.")
    smoothed = ndimage.gaussian_filter(grey, INTENSITY_SIGMA)
    return np.where(masks, -np.abs(smoothed[None] - references), -np.inf)


def merge_box_masks(masks: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One label map from the masks of several boxes; where masks overlap, the higher score wins.

    Args:
        masks: [B, *spatial] bool, one mask per box (2D [B, H, W] or 3D [B, D, H, W]).
        scores: [B] finite, each mask's priority (its predicted IoU, or
            :func:`overlap_scores`), or [B, *spatial], a priority per pixel (finite where the
            mask is set); ties go to the lower box index.
        labels: [B] integer label of each box, 1..65535 (several boxes may share a label).
    Returns:
        [*spatial] uint16 label map, 0 where no mask is set.
    Raises:
        ValueError: lengths or shapes differ, a label is outside 1..65535, or a score is not
            finite.
    """
    masks = np.asarray(masks, bool)
    scores = np.asarray(scores, dtype=np.float64)
    per_pixel = scores.ndim > 1
    if not per_pixel:
        scores = scores.reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if (masks.ndim < 3 or not len(masks) == len(scores) == len(labels)
            or (per_pixel and scores.shape != masks.shape)):
        raise ValueError(f"merge_box_masks: masks {masks.shape} must be [B, *spatial] with one "
                         f"score ({scores.shape}: [B] or the masks' shape) and one label "
                         f"({labels.shape}) per box.")
    if len(labels) and (not np.issubdtype(labels.dtype, np.integer)
                        or labels.min() < 1 or labels.max() > _MAX_LABEL):
        raise ValueError(f"merge_box_masks: box labels must be integers in 1..{_MAX_LABEL} "
                         f"(0 is background), got {labels.tolist()[:10]}.")
    used = scores[masks] if per_pixel else scores
    if not np.isfinite(used).all():
        raise ValueError(f"merge_box_masks: scores must be finite, got {used.tolist()[:10]}.")
    merged = np.zeros(masks.shape[1:], dtype=np.uint16)
    if per_pixel:
        best = np.full(masks.shape[1:], -np.inf)
        for index in range(len(masks)):  # strictly higher: ties stay with the lower index
            wins = masks[index] & (scores[index] > best)
            merged[wins], best[wins] = labels[index], scores[index][wins]
        return merged
    # paint the lowest score first, so the highest is painted last; among equal scores the
    # higher index is painted first, so the lower index wins
    for index in np.lexsort((-np.arange(len(scores)), scores)):
        merged[masks[index]] = labels[index]
    return merged


def spacing_in_array_order(stored: Sequence[float], spacing_order: str) -> Tuple[float, ...]:
    """A volume's stored ``spacing`` (3 values, mm) in its arrays' (z, y, x) axis order.

    Args:
        stored: the npz's ``spacing``.
        spacing_order: "xyz" (stored as SimpleITK's ``GetSpacing()``, the challenge's files:
            reversed here) or "zyx" (stored in the array's order).
    Raises:
        ValueError: not 3 positive finite values, or an unknown ``spacing_order``.
    """
    if spacing_order not in SPACING_ORDERS:
        raise ValueError(f"spacing_order must be one of {SPACING_ORDERS}, got {spacing_order!r}.")
    values = np.asarray(stored, dtype=np.float64).reshape(-1)
    if values.size != 3 or not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"spacing {values.tolist()} must hold 3 positive values in mm.")
    return tuple(float(v) for v in (values[::-1] if spacing_order == "xyz" else values))


def dsc_per_label(gt: np.ndarray, pred: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """DSC of each label: ``2 |P & G| / (|P| + |G|)``; NaN for a label in neither map.

    Args:
        gt, pred: [*spatial] non-negative integer label maps of one shape.
        labels: the labels to score.
    Returns:
        [len(labels)] float64 in [0, 1].
    """
    size = int(max(gt.max(initial=0), pred.max(initial=0), max(labels, default=0))) + 1
    gt_count = np.bincount(gt.ravel(), minlength=size)
    pred_count = np.bincount(pred.ravel(), minlength=size)
    overlap = np.bincount(gt[gt == pred].ravel(), minlength=size)
    labels = np.asarray(labels, dtype=np.int64)
    total = (gt_count[labels] + pred_count[labels]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * overlap[labels] / total, np.nan)


def nsd_per_label(gt: np.ndarray, pred: np.ndarray, labels: Sequence[int],
                  spacing: Sequence[float], tolerance: float) -> np.ndarray:
    """Normalised surface Dice of each label at ``tolerance`` (see the module docstring).

    Args:
        gt, pred: [*spatial] non-negative integer label maps of one shape (2D or 3D).
        labels: the labels to score.
        spacing: one element size per array axis, in the unit of ``tolerance`` (mm or px).
        tolerance: tau, the largest surface distance counted as correct (same unit).
    Returns:
        [len(labels)] float64 in [0, 1]; 0 for a label in only one map, NaN for one in neither.
    """
    import torch
    from monai.metrics import compute_surface_dice

    gt_boxes, pred_boxes = ndimage.find_objects(gt), ndimage.find_objects(pred)
    result = np.full(len(labels), np.nan)
    for k, label in enumerate(labels):
        in_gt = label <= len(gt_boxes) and gt_boxes[label - 1] is not None
        in_pred = label <= len(pred_boxes) and pred_boxes[label - 1] is not None
        if in_gt != in_pred:
            result[k] = 0.0
        if not (in_gt and in_pred):
            continue
        # crop to the union of both bounding boxes: MONAI pads the crop with zeros, as outside it
        window = tuple(slice(min(a.start, b.start), max(a.stop, b.stop))
                       for a, b in zip(gt_boxes[label - 1], pred_boxes[label - 1]))
        as_input = [torch.from_numpy(np.ascontiguousarray(a[window] == label))[None, None].float()
                    for a in (pred, gt)]
        with warnings.catch_warnings():  # MONAI 1.5-1.6 passes its own deprecated argument
            warnings.filterwarnings("ignore", ".*`always_return_as_numpy`", FutureWarning)
            result[k] = float(compute_surface_dice(
                *as_input, class_thresholds=[float(tolerance)], include_background=True,
                spacing=[float(s) for s in spacing], use_subvoxels=True)[0, 0])
    return result


def case_scores(gt: np.ndarray, pred: np.ndarray, *, spacing: Optional[Sequence[float]] = None,
                tolerance: float = 2.0, gate_dsc: Optional[float] = None,
                planar_nsd: str = "contour") -> CaseScores:
    """DSC and NSD per label of one case (see the module docstring for every rule).

    Args:
        gt: [H, W] or [D, H, W] non-negative integer ground-truth labels.
        pred: predicted labels, the same shape.
        spacing: element size per array axis (e.g. (z, y, x) mm for a (D, H, W) volume);
            None = 1 per axis (pixels).
        tolerance: NSD tolerance tau in the unit of ``spacing`` (2 mm in 3D, 2 px in 2D).
        gate_dsc: if set, a case whose mean DSC is not above it gets NSD 0 (the challenge: 0.2).
        planar_nsd: for 2D cases, "contour" or "slab" (one-slice volume, the challenge's script).
    Returns:
        the case's :class:`CaseScores`.
    Raises:
        ValueError: shapes differ, a map is not 2D/3D non-negative integers, the spacing does
            not have one positive value per axis, or ``planar_nsd`` is unknown.
    """
    gt, pred = _label_map(gt, "gt"), _label_map(pred, "pred")
    if gt.shape != pred.shape:
        raise ValueError(f"Prediction {pred.shape} and ground truth {gt.shape} differ in shape.")
    if planar_nsd not in PLANAR_NSD_MODES:
        raise ValueError(f"planar_nsd must be one of {PLANAR_NSD_MODES}, got {planar_nsd!r}.")
    spacing = tuple(float(s) for s in (spacing if spacing is not None else (1.0,) * gt.ndim))
    if len(spacing) != gt.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing {spacing} must hold one positive size per axis of the "
                         f"{gt.ndim}D maps {gt.shape}, in the arrays' axis order.")
    present = np.union1d(np.unique(gt), np.unique(pred))
    labels = present[present > 0].astype(np.int64)
    skipped = int(gt.max(initial=0)) - int(np.count_nonzero(labels <= gt.max(initial=0)))
    dsc = dsc_per_label(gt, pred, labels)
    gated = bool(gate_dsc is not None and len(labels) and dsc.mean() <= gate_dsc)
    if gated:
        nsd = np.zeros(len(labels))
    elif gt.ndim == 2 and planar_nsd == "slab":
        nsd = nsd_per_label(gt[..., None], pred[..., None], labels, spacing + (1.0,), tolerance)
    else:
        nsd = nsd_per_label(gt, pred, labels, spacing, tolerance)
    truth, predicted = gt > 0, pred > 0
    return CaseScores(labels=labels, dsc=dsc, nsd=nsd, skipped_labels=skipped, gated=gated,
                      missed=int(np.count_nonzero(truth & ~predicted)),
                      spurious=int(np.count_nonzero(~truth & predicted)),
                      swapped=int(np.count_nonzero(truth & predicted & (gt != pred))))


def _label_map(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as a 2D/3D int64 label map; ValueError naming ``name`` otherwise."""
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"'{name}' must be a 2D [H, W] or 3D [D, H, W] label map, got shape "
                         f"{array.shape}.")
    if array.dtype == bool:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"'{name}' must hold integer labels, got {array.dtype}.")
    if array.size and (array.min() < 0 or array.max() > _MAX_LABEL):
        raise ValueError(f"'{name}' holds labels {array.min()}..{array.max()}; labels are "
                         f"0..{_MAX_LABEL} (0 = background, uint16 like the challenge's segs).")
    return array.astype(np.int64, copy=False)
