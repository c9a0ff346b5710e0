"""3D box propagation: every slice encoded once, z_max segmented, overlaps settled by predicted
IoU, collapse policies, boxes checked."""
import numpy as np
import pytest

from vertspine.modeling.prompt_seg.propagation import SliceSegmenter, mask_box, propagate_boxes


class ThresholdSegmenter:
    """A stand-in model: the 'embedding' is the slice itself; a box's mask is the slice's
    foreground (> 0.5) inside the box; its IoU is 0.9, or 0.5 for boxes wider than ``wide``
    pixels, 0 for an empty mask. Records every slice it encodes."""

    def __init__(self, wide: float = 1e9, input_size: int = 32):
        self.encoded, self.prompts, self.wide = [], [], wide
        self.segmenter = SliceSegmenter(self.embed, self.decode, input_size)

    def embed(self, slices):
        self.encoded.append(len(slices))
        return list(slices)

    def decode(self, embedding, boxes):
        self.prompts.append(boxes[0].copy())
        rows, cols = np.mgrid[:embedding.shape[0], :embedding.shape[1]]
        masks, ious = [], []
        for x0, y0, x1, y1 in boxes:
            inside = (cols >= x0) & (cols <= x1) & (rows >= y0) & (rows <= y1)
            mask = (embedding > 0.5) & inside
            masks.append(mask)
            ious.append(0.0 if not mask.any() else 0.5 if x1 - x0 > self.wide else 0.9)
        return np.stack(masks), np.array(ious, np.float32)


def drifting_disc(depth=9, size=32, radius=4, step=2, start=8):
    """[D, H, W] volume of a disc centred at (x, y) = (start, 16) on slice 0, moving ``step``
    px along x per slice."""
    rows, cols = np.mgrid[:size, :size]
    volume = np.zeros((depth, size, size), np.float32)
    for z in range(depth):
        volume[z] = (rows - 16) ** 2 + (cols - start - step * z) ** 2 <= radius ** 2
    return volume


def test_follows_a_drifting_object_to_both_ends_including_z_max():
    volume = drifting_disc()
    model = ThresholdSegmenter()
    # the 2D rectangle covers the object on the middle slice only (z_mid = 4, centre x = 16):
    # a box narrower than its object, followed only when masks may leave the box
    box = np.array([[11, 11, 0, 21, 21, 8]])
    segs, scores, report = propagate_boxes(volume, box, model.segmenter, expand=3,
                                           within_box=False)
    assert segs.dtype == np.uint16
    np.testing.assert_array_equal(segs, volume.astype(np.uint16))
    assert segs[8].sum() == volume[8].sum() > 0  # the original skips z_max
    assert report.slices_per_box == [9] and report.stopped == [{"up": None, "down": None}]
    assert report.encoder_calls == report.distinct_slices == 9 and sum(model.encoded) == 9
    assert np.allclose(scores[volume > 0], 0.9)


def test_masks_stay_inside_their_box_and_do_not_drift_onto_a_neighbour():
    # a disc (x 7..13) inside its box and a bar next to it (x 15..20) on every slice: the
    # expanded prompt of slice z_mid + 1 reaches the bar, and without confinement each next
    # prompt grows further onto it
    rows, cols = np.mgrid[:32, :32]
    disc = (rows - 16) ** 2 + (cols - 10) ** 2 <= 9
    bar = (cols >= 15) & (cols <= 20) & (rows >= 10) & (rows <= 22)
    volume = np.repeat((disc | bar)[None].astype(np.float32), 9, axis=0)
    box = np.array([[6, 12, 0, 14, 20, 8]])
    segs, _, _ = propagate_boxes(volume, box, ThresholdSegmenter().segmenter, expand=3)
    np.testing.assert_array_equal(segs, np.repeat(disc[None], 9, axis=0).astype(np.uint16))
    drifted, _, _ = propagate_boxes(volume, box, ThresholdSegmenter().segmenter, expand=3,
                                    within_box=False)
    assert drifted[8][bar].all() and not drifted[4][bar].any()  # the middle slice is right


def test_each_slice_is_encoded_once_for_all_boxes_in_batches():
    volume = drifting_disc(depth=12, step=0, start=16)
    model = ThresholdSegmenter()
    boxes = np.array([[10, 10, 0, 22, 22, 5], [10, 10, 3, 22, 22, 8], [10, 10, 10, 22, 22, 11]])
    _, _, report = propagate_boxes(volume, boxes, model.segmenter, batch_slices=4)
    assert report.distinct_slices == report.encoder_calls == 11  # slices 0-8 and 10-11
    assert model.encoded == [4, 4, 3]


def test_overlaps_go_to_the_higher_predicted_iou_in_any_box_order():
    volume = drifting_disc(step=0, start=16)
    tight, wide = [11, 11, 4, 21, 21, 4], [0, 0, 4, 31, 31, 4]  # IoU 0.9 and 0.5 (see model)
    for boxes, winner in (([wide, tight], 2), ([tight, wide], 1)):
        segs, scores, _ = propagate_boxes(volume, np.array(boxes),
                                          ThresholdSegmenter(wide=20).segmenter)
        assert set(np.unique(segs[4][volume[4] > 0])) == {winner}
        assert np.allclose(scores[4][volume[4] > 0], 0.9)


@pytest.mark.parametrize("policy, segmented_after_gap", [("stop", False), ("box", True)])
def test_collapse_stops_or_falls_back_to_the_box(policy, segmented_after_gap):
    volume = drifting_disc(step=0, start=16)
    volume[6] = 0  # the object vanishes on one slice above the middle (z_mid = 4)
    model = ThresholdSegmenter()
    segs, _, report = propagate_boxes(volume, np.array([[10, 10, 0, 22, 22, 8]]),
                                      model.segmenter, on_collapse=policy)
    assert bool(segs[7:].any()) == segmented_after_gap
    assert report.stopped[0]["up"] == (None if segmented_after_gap else 7)
    assert segs[:6].astype(bool).sum() == volume[:6].sum()


def test_low_predicted_iou_counts_as_collapse():
    volume = drifting_disc(step=0, start=16)
    model = ThresholdSegmenter(wide=5)  # every mask of these boxes has IoU 0.5
    segs, _, report = propagate_boxes(volume, np.array([[10, 10, 0, 22, 22, 8]]),
                                      model.segmenter, min_iou=0.6)
    assert report.stopped == [{"up": 5, "down": 3}] and report.slices_per_box == [1]
    assert segs[4].any() and not segs[5:].any() and not segs[:4].any()


def test_three_hundred_boxes_keep_their_labels():
    volume = np.ones((300, 4, 4), np.float32)
    boxes = np.array([[0, 0, z, 3, 3, z] for z in range(300)])
    segs, _, _ = propagate_boxes(volume, boxes, ThresholdSegmenter().segmenter)
    np.testing.assert_array_equal(segs[:, 0, 0], np.arange(1, 301))


@pytest.mark.parametrize("box, message", [([5, 5, 6, 9, 9, 2], "minimum above"),
                                          ([5, 5, 0, 9, 9, 9], "outside"),
                                          ([40, 5, 0, 50, 9, 2], "outside")])
def test_bad_boxes_are_refused(box, message):
    with pytest.raises(ValueError, match=message):
        propagate_boxes(np.zeros((9, 32, 32)), np.array([box]), ThresholdSegmenter().segmenter)


def test_no_boxes_give_background_and_no_encoder_call():
    model = ThresholdSegmenter()
    segs, _, report = propagate_boxes(np.ones((3, 8, 8)), np.zeros((0, 6)), model.segmenter)
    assert not segs.any() and report.encoder_calls == 0 and model.encoded == []


def test_mask_box_is_tight_and_inclusive():
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:6] = True
    np.testing.assert_array_equal(mask_box(mask), [3, 2, 5, 3])
    assert mask_box(np.zeros((3, 3), bool)).size == 0
