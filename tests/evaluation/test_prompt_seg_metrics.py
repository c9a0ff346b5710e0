"""prompt_seg_metrics: NSD against values derived by hand on hand-made masks (surface elements on
the corners between pixels, weighted by length in 2D and area in 3D, as DeepMind's surface
Dice), DSC against a hand count, absent labels, the DSC gate, merge_box_masks."""
from math import sqrt

import numpy as np
import pytest
from scipy import ndimage

from vertspine.evaluation.prompt_seg_metrics import (INTENSITY_SIGMA, case_scores, merge_box_masks,
                                                     overlap_scores, reference_intensity)

# A 10 x 10 px square; its contour: 36 straight corner points (length 1) + 4 corners (sqrt(2)/2).
SQUARE = np.zeros((20, 20), np.uint8)
SQUARE[5:15, 5:15] = 1
# Shifted 3 px along x, tau = 2 px: of each contour, the 11 points of the trailing side (3 px
# away) fail, and so do 5 of the 9 side points of the leading side (3 to 5 px away) = 22 + the
# two kept corners within tau: (22 + sqrt(2)) / (36 + 2 sqrt(2)).
SHIFT3_CONTOUR = (22 + sqrt(2)) / (36 + 2 * sqrt(2))
# The challenge's 2D NSD (one-slice volume, unit spacing): each flat face has 81 inner points
# (area 1), 36 edge points (sqrt(2)/2) and 4 corners (sqrt(3)/8); only the trailing column
# (9 edge points, 2 corners) is 3 px from the other face.
_FACE = 81 + 36 * sqrt(2) / 2 + 4 * sqrt(3) / 8
SHIFT3_SLAB = 1 - (9 * sqrt(2) / 2 + 2 * sqrt(3) / 8) / _FACE


@pytest.mark.parametrize("shift, planar_nsd, expected", [
    (1, "contour", 1.0), (3, "contour", SHIFT3_CONTOUR), (1, "slab", 1.0), (3, "slab", SHIFT3_SLAB),
])
def test_square_shifted_nsd_by_hand(shift, planar_nsd, expected):
    scores = case_scores(SQUARE, np.roll(SQUARE, shift, axis=1), tolerance=2.0,
                         planar_nsd=planar_nsd)
    assert scores.mean_nsd == pytest.approx(expected, abs=1e-6)
    assert scores.mean_dsc == pytest.approx((10 - shift) / 10)  # 2 * 10 (10 - s) / 200
    assert SHIFT3_CONTOUR == pytest.approx(0.603017, abs=1e-6)  # DeepMind's surface_distance too
    assert SHIFT3_SLAB == pytest.approx(0.936667, abs=1e-6)


# A 6 x 10 x 10 voxel box in a (z, y, x) volume with spacing (2.5, 0.8, 0.8) mm, tau = 2 mm.
SPACING = (2.5, 0.8, 0.8)
BOX = np.zeros((12, 20, 20), np.uint8)
BOX[3:9, 4:14, 5:15] = 1


def _slice_shift_nsd(nz=6, ny=10, nx=10, s0=2.5, s1=0.8, s2=0.8):
    """NSD of the box shifted by one slice (2.5 mm > tau), by hand. Surface elements on the
    corners between voxels: a flat face's inner point has the area of one voxel face; an edge
    point s_along * sqrt(s_a^2 + s_b^2) / 2; a corner |(s1 s2, s0 s2, s0 s1)| / 8. What fails:
    the whole leading cap (2.5 mm from the other box), and the inner points of the other cap
    that are 3 or more rows (2.4 mm) in from the other box's side walls."""
    corner = sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2) / 8
    cap = ((ny - 1) * (nx - 1) * s1 * s2 + 2 * (nx - 1) * s2 * sqrt(s0 ** 2 + s1 ** 2) / 2
           + 2 * (ny - 1) * s1 * sqrt(s0 ** 2 + s2 ** 2) / 2 + 4 * corner)
    wall_ring = (2 * (nx - 1) * s0 * s2 + 2 * (ny - 1) * s0 * s1
                 + 4 * s0 * sqrt(s1 ** 2 + s2 ** 2) / 2)
    area = 2 * cap + (nz - 1) * wall_ring
    failed = cap + (ny - 5) * (nx - 5) * s1 * s2
    return 1 - failed / area


def test_anisotropic_box_one_slice_shift_is_beyond_tau_one_pixel_is_within():
    in_plane = [case_scores(BOX, np.roll(BOX, 1, axis=a), spacing=SPACING) for a in (1, 2)]
    assert [s.mean_nsd for s in in_plane] == [1.0, 1.0]  # 0.8 mm <= 2 mm: every element
    through_plane = case_scores(BOX, np.roll(BOX, 1, axis=0), spacing=SPACING)
    assert through_plane.mean_nsd == pytest.approx(_slice_shift_nsd(), abs=1e-6)
    assert _slice_shift_nsd() == pytest.approx(0.812278, abs=1e-6)  # DeepMind's package agrees
    assert through_plane.mean_dsc == pytest.approx(5 / 6)
    at_slice_spacing = case_scores(BOX, np.roll(BOX, 1, axis=0), spacing=SPACING, tolerance=2.5)
    assert at_slice_spacing.mean_nsd == pytest.approx(1.0)


def test_spacing_follows_the_array_axis_order():
    """The same geometry stored as (x, y, z) arrays takes (x, y, z) spacing and scores the same;
    the (z, y, x) spacing on those arrays would make the slice shift look in-plane."""
    gt, pred = BOX.transpose(2, 1, 0), np.roll(BOX, 1, axis=0).transpose(2, 1, 0)
    assert case_scores(gt, pred, spacing=SPACING[::-1]).mean_nsd == pytest.approx(
        _slice_shift_nsd(), abs=1e-6)
    assert case_scores(gt, pred, spacing=SPACING).mean_nsd == 1.0


def test_dsc_per_label_by_hand_count():
    gt = np.zeros((8, 8), np.uint16)
    gt[0:4, 0:4] = 1  # 16 px
    gt[5:8, 5:8] = 2  # 9 px
    pred = np.zeros_like(gt)
    pred[0:4, 0:2] = 1  # 8 px, all inside label 1
    pred[5:8, 4:7] = 2  # 9 px, 6 inside label 2
    scores = case_scores(gt, pred)
    np.testing.assert_array_equal(scores.labels, [1, 2])
    np.testing.assert_allclose(scores.dsc, [2 * 8 / (16 + 8), 2 * 6 / (9 + 9)])
    assert scores.mean_dsc == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_absent_labels_are_skipped_and_counted_never_nan():
    gt = np.zeros((16, 16), np.int32)
    gt[2:6, 2:6], gt[9:13, 9:13] = 1, 4  # labels 2 and 3 absent from both: skipped, counted
    pred = np.zeros_like(gt)
    pred[2:6, 2:6] = 1
    pred[9:13, 1:4] = 5  # a label only predicted: DSC 0, NSD 0
    scores = case_scores(gt, pred)
    np.testing.assert_array_equal(scores.labels, [1, 4, 5])
    np.testing.assert_allclose(scores.dsc, [1.0, 0.0, 0.0])
    np.testing.assert_allclose(scores.nsd, [1.0, 0.0, 0.0])
    assert scores.skipped_labels == 2
    assert scores.mean_dsc == pytest.approx(1 / 3) and scores.mean_nsd == pytest.approx(1 / 3)
    empty = case_scores(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    assert len(empty.labels) == 0 and np.isnan(empty.mean_dsc) and empty.skipped_labels == 0


def test_voxel_errors_count_missed_spurious_and_swapped():
    gt = np.zeros((2, 6, 6), np.uint16)
    gt[:, 0:3, 0:3], gt[:, 3:6, 3:6] = 1, 2  # 18 + 18 voxels
    pred = gt.copy()
    pred[0, 0, 0] = 0  # missed
    pred[1, 5, 0:2] = 2  # spurious (background labelled)
    pred[:, 2, 0:3] = 2  # swapped: 2 slices x 3 voxels of label 1 labelled 2
    scores = case_scores(gt, pred)
    assert (scores.missed, scores.spurious, scores.swapped) == (1, 2, 6)
    clean = case_scores(gt, gt)
    assert (clean.missed, clean.spurious, clean.swapped) == (0, 0, 0)


def test_dsc_gate_sets_nsd_to_zero_only_when_asked():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:15, 5:15] = 1
    pred = np.roll(gt, 8, axis=1)  # DSC 2 * 20 / 200 = 0.2, not above the challenge's gate
    free, gated = case_scores(gt, pred), case_scores(gt, pred, gate_dsc=0.2)
    assert free.mean_dsc == pytest.approx(0.2) and free.mean_nsd > 0.2 and not free.gated
    assert gated.gated and gated.mean_nsd == 0.0 and gated.mean_dsc == free.mean_dsc
    assert not case_scores(gt, np.roll(gt, 7, axis=1), gate_dsc=0.2).gated  # DSC 0.3


def test_merge_box_masks_higher_iou_wins_ties_to_the_lower_index():
    masks = np.zeros((3, 6, 6), bool)
    masks[0, 0:4, 0:4] = True
    masks[1, 2:6, 2:6] = True
    masks[2, 0:4, 0:4] = True  # the same mask as box 0, same score: box 0 keeps it
    merged = merge_box_masks(masks, np.array([0.6, 0.9, 0.6]), np.array([7, 8, 9]))
    assert merged.dtype == np.uint16
    assert merged[3, 3] == 8 and merged[0, 0] == 7 and merged[5, 5] == 8 and merged[0, 5] == 0
    assert (merged == 9).sum() == 0
    reordered = merge_box_masks(masks[[1, 0]], np.array([0.9, 0.6]), np.array([8, 7]))
    np.testing.assert_array_equal(reordered, merged)  # not "last one wins"
    low = merge_box_masks(masks[:2], np.array([0.6, 0.1]), np.array([7, 8]))
    assert low[3, 3] == 7


def test_smaller_overlap_scores_let_the_nested_mask_win():
    masks = np.zeros((2, 8, 8), bool)
    masks[0, 0:8, 0:8] = True  # an organ, predicted IoU 0.9
    masks[1, 3:5, 3:5] = True  # a lesion inside it, 0.4
    ious = np.array([0.9, 0.4])
    np.testing.assert_array_equal(overlap_scores(masks, ious, "iou"), ious)
    np.testing.assert_array_equal(overlap_scores(masks, ious, "smaller"), [-64, -4])
    merged = merge_box_masks(masks, overlap_scores(masks, ious, "smaller"), np.array([1, 2]))
    assert (merged == 2).sum() == 4 and (merged == 1).sum() == 60
    assert (merge_box_masks(masks, ious, np.array([1, 2])) == 1).all()
    with pytest.raises(ValueError, match="'area' is not one of"):
        overlap_scores(masks, ious, "area")


def two_intensity_image():
    """[12, 12]: columns 0..8 at 100 (structure A, e.g. HU), 9..11 at 250 (B); A's mask is
    columns 0..8 (108 px, right), B's columns 7..11 (60 px: 2 columns of A leaked in)."""
    image = np.full((12, 12), 100.0)
    image[:, 9:] = 250.0
    masks = np.zeros((2, 12, 12), bool)
    masks[0, :, :9], masks[1, :, 7:] = True, True
    return image, masks


def test_intensity_overlap_gives_each_contested_pixel_to_the_nearest_reference():
    image, masks = two_intensity_image()
    ious = np.array([0.5, 0.9])
    by_size = merge_box_masks(masks, overlap_scores(masks, ious, "smaller"), np.array([1, 2]))
    assert (by_size[:, 7:9] == 2).all()  # the smaller, leaking mask takes A's columns
    # references: the medians over each box's own mask (B: 24 px at 100, 36 at 250)
    assert reference_intensity(image, masks[0]) == 100.0
    assert reference_intensity(image, masks[1]) == 250.0
    scores = overlap_scores(masks, ious, "intensity", image)
    smoothed = ndimage.gaussian_filter(image, INTENSITY_SIGMA)
    for index, reference in enumerate((100.0, 250.0)):
        np.testing.assert_allclose(scores[index][masks[index]],
                                   -np.abs(smoothed - reference)[masks[index]])
        assert np.isneginf(scores[index][~masks[index]]).all()
    # column 8 is smoothed to 100 + 150 * (w1 + w2 + w3) / (1 + 2 (w1 + w2 + w3)), with
    # w_k = exp(-k^2 / (2 * 0.7^2)) (scipy's kernel, radius 3): 132.3, nearer A's 100
    w = np.exp(-np.arange(1, 4) ** 2 / (2 * INTENSITY_SIGMA ** 2)).sum()
    assert smoothed[0, 8] == pytest.approx(100 + 150 * w / (1 + 2 * w)) == pytest.approx(132.26,
                                                                                         abs=0.01)
    merged = merge_box_masks(masks, scores, np.array([1, 2]))
    np.testing.assert_array_equal(merged, np.where(image == 100.0, 1, 2))
    # given references replace the medians; an RGB image scores as its channel mean
    swapped = overlap_scores(masks, ious, "intensity", image, references=[250.0, 100.0])
    assert (merge_box_masks(masks, swapped, np.array([1, 2]))[:, 7:9] == 2).all()
    rgb = np.repeat(image[..., None], 3, axis=-1)
    np.testing.assert_array_equal(overlap_scores(masks, ious, "intensity", rgb), scores)


def test_intensity_overlap_needs_the_image_and_a_reference_per_mask():
    image, masks = two_intensity_image()
    with pytest.raises(ValueError, match="needs the image"):
        overlap_scores(masks, [0.5, 0.9], "intensity")
    with pytest.raises(ValueError, match="reference intensity for every non-empty mask"):
        overlap_scores(masks, [0.5, 0.9], "intensity", image, references=[100.0, np.nan])
    empty = np.zeros_like(masks)
    assert np.isneginf(overlap_scores(empty, [0.5, 0.9], "intensity", image)).all()
    with pytest.raises(ValueError, match="the mask is empty"):
        reference_intensity(image, empty[0])


def test_merge_box_masks_takes_a_score_per_pixel_ties_to_the_lower_index():
    masks = np.ones((2, 2, 3), bool)
    masks[1, 0, 0] = False
    scores = np.array([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]],
                       [[-np.inf, 2.0, 4.0], [1.0, -1.0, 0.0]]])
    merged = merge_box_masks(masks, scores, np.array([5, 6]))
    np.testing.assert_array_equal(merged, [[5, 5, 6], [6, 5, 5]])
    with pytest.raises(ValueError, match="finite"):
        merge_box_masks(np.ones((2, 2, 3), bool), scores, np.array([5, 6]))
    with pytest.raises(ValueError, match="the masks' shape"):
        merge_box_masks(masks, scores[:, :1], np.array([5, 6]))


def test_merge_box_masks_keeps_300_labels_and_3d():
    masks = np.zeros((300, 1, 300), bool)
    masks[np.arange(300), 0, np.arange(300)] = True
    merged = merge_box_masks(masks, np.ones(300), np.arange(1, 301))
    np.testing.assert_array_equal(merged[0], np.arange(1, 301))  # 256+ survive (uint8 did not)
    volume = np.zeros((2, 3, 4, 4), bool)
    volume[0, 1:3, :2], volume[1, 2:, 1:] = True, True
    merged3d = merge_box_masks(volume, np.array([0.2, 0.5]), np.array([1, 2]))
    assert merged3d.shape == (3, 4, 4) and merged3d[2, 1, 1] == 2 and merged3d[1, 0, 0] == 1
    assert merge_box_masks(np.zeros((0, 3, 3), bool), [], []).shape == (3, 3)


@pytest.mark.parametrize("labels, scores, match", [
    ([0], [0.5], "1..65535"), ([70000], [0.5], "1..65535"), ([1], [float("nan")], "finite"),
    ([1, 2], [0.5], "one score"),
])
def test_merge_box_masks_rejects_bad_boxes(labels, scores, match):
    with pytest.raises(ValueError, match=match):
        merge_box_masks(np.ones((len(labels), 2, 2), bool), np.array(scores), np.array(labels))


@pytest.mark.parametrize("gt, pred, kwargs, match", [
    (np.zeros((4, 4), int), np.zeros((4, 5), int), {}, "differ in shape"),
    (np.zeros((4, 4), float), np.zeros((4, 4), float), {}, "integer labels"),
    (np.zeros((4, 4, 4), int), np.zeros((4, 4, 4), int), {"spacing": (1.0, 1.0)}, "one positive"),
    (np.zeros((4, 4), int), np.zeros((4, 4), int), {"spacing": (1.0, 0.0)}, "one positive"),
    (np.full((4, 4), -1), np.zeros((4, 4), int), {}, "labels -1..-1"),
    (np.zeros((4, 4), int), np.zeros((4, 4), int), {"planar_nsd": "area"}, "planar_nsd"),
])
def test_bad_inputs_are_named(gt, pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        case_scores(gt, pred, **kwargs)
