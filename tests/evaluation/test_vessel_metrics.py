"""Vessel metrics on hand-made volumes with known answers: Betti numbers of a tube, two tubes, a
torus and a hollow sphere; clDice and HD95 of a shifted tube (HD95 = the shift in mm along that
axis with anisotropic spacing); NSD against a hand count of surface voxels; Dice/IoU against a
hand count; AUROC against the Mann-Whitney U statistic; every empty / single-class edge case."""
import numpy as np
import pytest
from scipy import ndimage
from scipy.stats import mannwhitneyu

from vertspine.evaluation.vessel_metrics import (
    METRIC_NAMES,
    betti_errors,
    betti_numbers,
    centerline_dice,
    hausdorff_distance_95,
    normalized_surface_dice,
    overlap_metrics,
    probability_metrics,
    vessel_metrics,
)

N = 16
X, Y, Z = np.indices((N, N, N))


def tube(cx=8.0, cy=8.0, radius=2.5):
    """A straight tube along the last axis, through the whole volume."""
    return (X - cx) ** 2 + (Y - cy) ** 2 <= radius ** 2


def torus(major=5.0, minor=1.8):
    return (np.hypot(X - 8, Y - 8) - major) ** 2 + (Z - 8) ** 2 <= minor ** 2


def hollow_sphere(inner=3.5, outer=6.0):
    distance = np.sqrt((X - 8) ** 2 + (Y - 8) ** 2 + (Z - 8) ** 2)
    return (distance >= inner) & (distance <= outer)


@pytest.mark.parametrize("mask, expected", [
    (tube(), (1, 0, 0)),
    (tube(4, 4, 1.5) | tube(11, 11, 2.0), (2, 0, 0)),
    (torus(), (1, 1, 0)),
    (hollow_sphere(), (1, 0, 1)),
    (np.zeros((N, N, N), bool), (0, 0, 0)),
    (np.ones((N, N, N), bool), (1, 0, 0)),  # touches every face: the padding closes it
], ids=["tube", "two-tubes", "torus", "hollow-sphere", "empty", "full"])
def test_betti_numbers_of_known_shapes(mask, expected):
    assert betti_numbers(mask) == expected


def test_betti_errors_between_a_torus_and_two_tubes():
    errors = betti_errors(tube(4, 4, 1.5) | tube(11, 11, 2.0), torus())
    assert errors["betti0_error"] == 1 and errors["betti1_error"] == 1
    assert errors["betti2_error"] == 0
    assert (errors["betti0_pred"], errors["betti1_pred"]) == (2, 0)
    assert (errors["betti0_gt"], errors["betti1_gt"]) == (1, 1)


def test_overlap_metrics_equal_a_hand_count():
    gt = np.zeros((4, 4, 4), bool)
    pred = np.zeros((4, 4, 4), bool)
    gt[0, 0, :4] = True  # 4 voxels
    pred[0, 0, 2:4] = True  # 2 true positives
    pred[3, 3, :] = True  # 4 false positives
    scores = overlap_metrics(pred, gt)
    assert scores == pytest.approx({"Dice": 2 * 2 / (6 + 4), "IoU": 2 / 8,
                                    "precision": 2 / 6, "recall": 2 / 4})


@pytest.mark.parametrize("seed", [0, 1])
def test_overlap_metrics_equal_sklearn(seed):
    from sklearn.metrics import f1_score, jaccard_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    gt, pred = rng.random((8, 9, 10)) < 0.3, rng.random((8, 9, 10)) < 0.4
    scores = overlap_metrics(pred, gt)
    labels = gt.ravel(), pred.ravel()
    assert scores == pytest.approx({"Dice": f1_score(*labels), "IoU": jaccard_score(*labels),
                                    "precision": precision_score(*labels),
                                    "recall": recall_score(*labels)})


def test_one_voxel_shift_keeps_cldice_and_a_larger_shift_loses_it():
    gt = tube()
    shifted = np.roll(gt, 1, axis=0)
    assert centerline_dice(shifted, gt) == {"clDice": 1.0, "Tprec": 1.0, "Tsens": 1.0}
    assert overlap_metrics(shifted, gt)["Dice"] < 0.8  # while Dice drops
    far = np.roll(gt, 3, axis=0)  # the centre line x = 8 leaves the tube around x = 11
    assert centerline_dice(far, gt)["clDice"] == 0.0


def test_cldice_equals_the_reference_formula_on_a_half_tube():
    """The half tube's skeleton lies inside the full one (Tprec 1); it covers about half of the
    full one's (Tsens, counted with scikit-image's skeleton as vesselFM does)."""
    from skimage.morphology import skeletonize

    gt = tube()
    pred = gt & (Z < 8)
    skeleton_gt = skeletonize(gt).astype(bool)
    tsens = np.count_nonzero(skeleton_gt & pred) / np.count_nonzero(skeleton_gt)
    assert 0.3 < tsens < 0.7
    assert centerline_dice(pred, gt) == pytest.approx(
        {"clDice": 2 * tsens / (1 + tsens), "Tprec": 1.0, "Tsens": tsens})


def test_a_mask_without_skeleton_is_its_own_centre_line():
    """A 2x2x2 block thins away entirely; clDice stays defined instead of 0/0."""
    from skimage.morphology import skeletonize

    gt = tube()
    blob = np.zeros_like(gt)
    blob[7:9, 7:9, 4:6] = True
    assert not skeletonize(blob).any()
    skeleton_gt = skeletonize(gt).astype(bool)
    tsens = np.count_nonzero(skeleton_gt & blob) / np.count_nonzero(skeleton_gt)
    assert 0 < tsens < 0.5
    assert centerline_dice(blob, gt)["Tprec"] == 1.0  # the whole block lies in the tube
    assert centerline_dice(blob, gt)["Tsens"] == pytest.approx(tsens)
    assert centerline_dice(np.roll(blob, 6, axis=0), gt)["clDice"] == 0.0  # outside it


@pytest.mark.parametrize("axis, spacing", [(0, (2.0, 0.6, 0.7)), (1, (0.8, 1.7, 0.5)),
                                           (0, (1.0, 1.0, 1.0))])
def test_hd95_of_a_one_voxel_shift_is_the_spacing_along_that_axis(axis, spacing):
    gt = tube()
    assert hausdorff_distance_95(np.roll(gt, 1, axis=axis), gt, spacing) == \
        pytest.approx(spacing[axis])


def test_nsd_equals_a_hand_count_of_surface_voxels_and_grows_with_the_tolerance():
    """Below the smallest non-zero distance (0.6 mm) only coinciding surface voxels count."""
    gt = tube() & (Z >= 2) & (Z < 14)
    pred = np.roll(gt, 1, axis=0)
    spacing = (2.0, 0.6, 0.7)
    surface_gt, surface_pred = (m & ~ndimage.binary_erosion(m) for m in (gt, pred))
    expected = 2 * np.count_nonzero(surface_gt & surface_pred) / \
        (np.count_nonzero(surface_gt) + np.count_nonzero(surface_pred))
    assert normalized_surface_dice(pred, gt, spacing, 0.5) == pytest.approx(expected, rel=1e-6)
    assert normalized_surface_dice(pred, gt, spacing, 1.0) > expected
    assert normalized_surface_dice(pred, gt, spacing, 2.0) == pytest.approx(1.0)


def test_auroc_equals_mann_whitney_and_ap_a_hand_count():
    gt = np.zeros((2, 2, 2), bool)
    gt[0, 0, :] = gt[1, 1, 0] = True  # 3 positives
    prob = np.array([0.9, 0.6, 0.2, 0.4, 0.3, 0.1, 0.8, 0.5]).reshape(2, 2, 2)
    scores = probability_metrics(prob, gt)
    positives, negatives = prob[gt], prob[~gt]
    u = mannwhitneyu(positives, negatives).statistic
    assert scores["AUROC"] == pytest.approx(u / (len(positives) * len(negatives)))
    # ranked: 0.9 (+), 0.8 (+), 0.6 (+): precision 1 at each recall step
    assert scores["AP"] == pytest.approx(1.0)
    assert probability_metrics(1.0 - prob, gt)["AP"] == pytest.approx((1 / 6 + 2 / 7 + 3 / 8) / 3)


@pytest.mark.parametrize("fill", [False, True], ids=["no-vessel", "all-vessel"])
def test_single_class_ground_truth_skips_auroc_and_ap(fill):
    gt = np.full((4, 4, 4), fill)
    prob = np.random.default_rng(0).random((4, 4, 4))
    assert probability_metrics(prob, gt) == {"AUROC": None, "AP": None}


def test_empty_cases_follow_the_stated_conventions():
    empty, gt, spacing = np.zeros((N, N, N), bool), tube(), (1.0, 1.0, 2.0)
    both = vessel_metrics(empty, empty, spacing)
    assert [both[m] for m in ("Dice", "IoU", "precision", "recall", "clDice", "NSD")] == [1.0] * 6
    assert both["HD95"] == 0.0 and both["AUROC"] is None and both["betti0_error"] == 0
    missed = vessel_metrics(empty, gt, spacing, prob=np.zeros((N, N, N)))
    assert (missed["Dice"], missed["recall"], missed["clDice"], missed["NSD"]) == (0, 0, 0, 0)
    assert missed["precision"] is None and missed["HD95"] is None
    assert missed["AUROC"] == 0.5 and missed["betti0_error"] == 1
    spurious = vessel_metrics(gt, empty, spacing, prob=gt.astype(float))
    assert spurious["recall"] is None and spurious["HD95"] is None and spurious["AUROC"] is None
    assert (spurious["Dice"], spurious["precision"], spurious["NSD"]) == (0, 0, 0)
    assert list(both) == list(METRIC_NAMES)
    assert not any(isinstance(v, float) and np.isnan(v) for v in (*both.values(),
                                                                   *missed.values(),
                                                                   *spurious.values()))


@pytest.mark.parametrize("call, message", [
    (lambda: overlap_metrics(np.zeros((4, 4, 4)), np.zeros((4, 4, 5))), "one shape"),
    (lambda: overlap_metrics(np.zeros((4, 4)), np.zeros((4, 4))), "3D"),
    (lambda: hausdorff_distance_95(tube(), tube(), (1.0, 0.0, 1.0)), "positive"),
    (lambda: normalized_surface_dice(tube(), tube(), (1, 1, 1), -1.0), "tolerance"),
    (lambda: probability_metrics(np.full((N, N, N), np.nan), tube()), "NaN"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
