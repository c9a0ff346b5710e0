"""3D box propagation: every slice encoded once, z_max segmented, overlaps settled by predicted
IoU, collapse policies, boxes checked."""
import numpy as np
import pytest
from scipy import ndimage

from vertspine.modeling.prompt_seg.propagation import SliceSegmenter, mask_box, propagate_boxes


class ThresholdSegmenter:
    """A stand-in model: the 'embedding' is the slice itself; a box's mask is the slice's
    foreground (> 0.5) inside the box; its IoU is 0.9, or 0.5 for boxes wider than ``wide``
    pixels, 0 for an empty mask. Records every slice it encodes."""

    def __init__(self, wide: float = 1e9):
        self.encoded, self.prompts, self.wide = [], [], wide
        self.segmenter = SliceSegmenter(self.embed, self.decode)

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
    # the 2D rectangle covers the object on the middle slice only (z_mid = 4, centre x = 16);
    # it moves 2 px per slice, less than the 3 px a prompt grows: followed to both ends
    box = np.array([[11, 11, 0, 21, 21, 8]])
    segs, scores, report = propagate_boxes(volume, box, model.segmenter, expand=24)
    assert segs.dtype == np.uint16
    np.testing.assert_array_equal(segs, volume.astype(np.uint16))
    assert segs[8].sum() == volume[8].sum() > 0  # the original skips z_max
    assert report.slices_per_box == [9] and report.stopped == [{"up": None, "down": None}]
    assert report.encoder_calls == report.distinct_slices == 9 and sum(model.encoded) == 9
    assert np.allclose(scores[volume > 0], 0.9)


class SpillingSegmenter(ThresholdSegmenter):
    """A stand-in model whose mask is every foreground component the box touches, whole (it
    spills out of the box)."""

    def decode(self, embedding, boxes):
        components, _ = ndimage.label(embedding > 0.5)
        masks, _ = super().decode(embedding, boxes)
        whole = [np.isin(components, np.unique(components[mask])) & (components > 0)
                 for mask in masks]
        return np.stack(whole), np.full(len(boxes), 0.9, np.float32)


def test_masks_are_cut_to_their_prompt_box_so_a_spill_grows_by_expand_per_slice():
    # a disc (x 7..13) with a bar attached to its right (x 14..30) on every slice; the box
    # holds the disc; the model's masks take the whole connected shape
    rows, cols = np.mgrid[:32, :32]
    disc = (rows - 16) ** 2 + (cols - 10) ** 2 <= 9
    bar = (cols >= 14) & (rows >= 15) & (rows <= 17)
    volume = np.repeat((disc | bar)[None].astype(np.float32), 9, axis=0)
    box = np.array([[7, 13, 0, 13, 19, 8]])
    segs, _, _ = propagate_boxes(volume, box, SpillingSegmenter().segmenter, expand=24)
    for z in range(9):  # the middle slice (4) stays in the box, each step adds 3 px
        assert np.flatnonzero(segs[z].any(axis=0)).max() == min(13 + 3 * abs(z - 4), 31)
    spilled, _, _ = propagate_boxes(volume, box, SpillingSegmenter().segmenter, expand=24,
                                    within_prompt=False)
    np.testing.assert_array_equal(spilled, volume.astype(np.uint16))  # the whole bar at once


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


class NegativeIouSegmenter(ThresholdSegmenter):
    """As :class:`ThresholdSegmenter`, with every predicted IoU at -0.2 for boxes wider than
    ``wide`` pixels (the IoU head is a regression: it can go below 0)."""

    def decode(self, embedding, boxes):
        masks, ious = super().decode(embedding, boxes)
        return masks, np.where(ious == 0.5, -0.2, ious).astype(np.float32)


def test_a_mask_with_predicted_iou_at_or_below_zero_is_kept_where_no_other_mask_is():
    # box 1 (wide, IoU -0.2) holds the disc on slice 4; box 2 (tight, IoU 0.9) holds its left
    # half: the negative-IoU mask keeps the right half, as in 2D (the merge used to start from
    # a score of 0 in 3D, which dropped such a mask everywhere)
    volume = drifting_disc(step=0, start=16)
    wide, left = [0, 0, 4, 31, 31, 4], [11, 11, 4, 16, 21, 4]
    segs, scores, _ = propagate_boxes(volume, np.array([wide, left]),
                                      NegativeIouSegmenter(wide=20).segmenter, min_iou=-1.0)
    disc = volume[4] > 0
    cols = np.arange(32)[None, :]
    np.testing.assert_array_equal(segs[4], np.where(disc & (cols <= 16), 2, np.where(disc, 1, 0)))
    assert np.allclose(scores[4][disc & (cols > 16)], -0.2)
    assert np.allclose(scores[4][disc & (cols <= 16)], 0.9)


class WideTrustingSegmenter(ThresholdSegmenter):
    """As :class:`ThresholdSegmenter`, with the IoUs swapped: 0.9 for wide boxes, 0.5 else."""

    def decode(self, embedding, boxes):
        masks, ious = super().decode(embedding, boxes)
        return masks, np.where(ious > 0, 1.4 - ious, 0.0).astype(np.float32)


def test_smaller_overlap_policy_keeps_a_nested_structure_whatever_the_iou():
    # a disc of radius 10 and a 7 x 7 square nested in it (the second box's mask); the disc's
    # mask covers the square and has the higher predicted IoU (0.9 vs 0.5)
    rows, cols = np.mgrid[:32, :32]
    outer = (rows - 16) ** 2 + (cols - 16) ** 2 <= 100
    inner = (rows >= 13) & (rows <= 19) & (cols >= 13) & (cols <= 19)
    volume = np.repeat(outer[None].astype(np.float32), 3, axis=0)
    boxes = np.array([[6, 6, 1, 26, 26, 1], [13, 13, 1, 19, 19, 1]])
    model = WideTrustingSegmenter(wide=10)
    by_iou, _, _ = propagate_boxes(volume, boxes, model.segmenter)
    assert (by_iou[1][outer] == 1).all()  # the nested structure is lost
    by_size, scores, _ = propagate_boxes(volume, boxes, model.segmenter, overlap="smaller")
    np.testing.assert_array_equal(by_size[1], np.where(inner, 2, np.where(outer, 1, 0)))
    assert np.allclose(scores[1][inner], 0.5) and np.allclose(scores[1][outer & ~inner], 0.9)
    with pytest.raises(ValueError, match="'largest' is not one of"):
        propagate_boxes(volume, boxes, model.segmenter, overlap="largest")


def test_intensity_overlap_policy_gives_a_leak_back_to_the_structure_of_its_value():
    # structure A (value 1.0) in columns 4..19, B (3.0) in 20..27, rows 8..23, slices 0..4;
    # B's box reaches 4 columns into A, and the model's mask is all foreground in its box, so
    # B's mask (12 columns) is smaller than A's (16) and "smaller" hands it A's columns 16..19
    volume = np.zeros((5, 32, 32), np.float32)
    volume[:, 8:24, 4:20], volume[:, 8:24, 20:28] = 1.0, 3.0
    labels = np.where(volume == 1.0, 1, np.where(volume == 3.0, 2, 0))
    boxes = np.array([[4, 8, 0, 19, 23, 4], [16, 8, 0, 27, 23, 4]])
    by_size, _, _ = propagate_boxes(volume, boxes, ThresholdSegmenter().segmenter,
                                    overlap="smaller")
    assert (by_size[:, 8:24, 16:20] == 2).all()
    # B's reference is the median over its middle-slice mask: 64 px at 1.0, 128 at 3.0 -> 3.0
    by_value, scores, _ = propagate_boxes(volume, boxes, ThresholdSegmenter().segmenter,
                                          overlap="intensity")
    np.testing.assert_array_equal(by_value, labels)
    assert np.allclose(scores[labels > 0], 0.9)


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


@pytest.mark.parametrize("size", [64, 512])
def test_expand_is_measured_in_a_256_px_frame(size):
    # a static square, propagated from the middle slice: the next prompt is its tight box grown
    # by 3 px of a 256-px frame, i.e. 3 * size / 256 px of this slice
    volume = np.zeros((3, size, size), np.float32)
    volume[:, 10:20, 12:30] = 1
    model = ThresholdSegmenter()
    propagate_boxes(volume, np.array([[12, 10, 0, 29, 19, 2]]), model.segmenter, expand=3)
    grow = 3 * size / 256
    np.testing.assert_allclose(model.prompts[1], [12 - grow, 10 - grow, 29 + grow, 19 + grow])


def test_inference_options_come_from_the_config_and_name_a_bad_key():
    from vertspine.config import get_vertspine_cfg
    from vertspine.modeling.prompt_seg import inference_options
    cfg = get_vertspine_cfg()
    assert inference_options(cfg) == {"expand": 3.0, "min_iou": 0.0, "on_collapse": "stop",
                                      "within_prompt": True, "mask_prompt": False,
                                      "overlap": "iou"}
    cfg.MODEL.PROMPT_SEG.PROPAGATION.ON_COLLAPSE = "last"
    with pytest.raises(ValueError, match="PROPAGATION.ON_COLLAPSE = 'last'"):
        inference_options(cfg)
    cfg.MODEL.PROMPT_SEG.PROPAGATION.ON_COLLAPSE = "box"
    cfg.MODEL.PROMPT_SEG.OVERLAP = "larger"
    with pytest.raises(ValueError, match="MODEL.PROMPT_SEG.OVERLAP = 'larger'"):
        inference_options(cfg)
    cfg.MODEL.PROMPT_SEG.OVERLAP = "iou"
    cfg.MODEL.PROMPT_SEG.PROPAGATION.MASK_PROMPT = True
    with pytest.raises(ValueError, match="set MODEL.PROMPT_SEG.MASK_PROMPT"):
        inference_options(cfg)
    cfg.MODEL.PROMPT_SEG.MASK_PROMPT = True
    assert inference_options(cfg)["mask_prompt"] is True


class MaskPromptRecorder(ThresholdSegmenter):
    """ThresholdSegmenter that also records the mask prompt of each decode (None without)."""

    def __init__(self):
        super().__init__()
        self.mask_prompts = []

    def decode(self, embedding, boxes, mask_prompts=None):
        self.mask_prompts.append(None if mask_prompts is None else mask_prompts.copy())
        return super().decode(embedding, boxes)


@pytest.mark.parametrize("mask_prompt", [True, False])
def test_propagated_slices_get_the_previous_slice_mask_as_prompt(mask_prompt):
    volume = drifting_disc()
    model = MaskPromptRecorder()
    box = np.array([[11, 11, 0, 21, 21, 8]])
    segs, _, _ = propagate_boxes(volume, box, model.segmenter, expand=24,
                                 mask_prompt=mask_prompt)
    np.testing.assert_array_equal(segs, volume.astype(np.uint16))
    # decode order: the middle slice 4, then up 5..8, then down 3..0
    order = [4, 5, 6, 7, 8, 3, 2, 1, 0]
    previous = {5: 4, 6: 5, 7: 6, 8: 7, 3: 4, 2: 3, 1: 2, 0: 1}
    assert len(model.mask_prompts) == len(order)
    assert model.mask_prompts[0] is None  # the middle slice has its box only
    for z, prompt in zip(order[1:], model.mask_prompts[1:]):
        if not mask_prompt:
            assert prompt is None
            continue
        assert prompt.shape == (1, 32, 32) and prompt.dtype == bool
        np.testing.assert_array_equal(prompt[0], volume[previous[z]] > 0.5)


def test_a_fallback_to_the_box_gets_no_mask_prompt():
    volume = drifting_disc(depth=5, step=0, start=16)
    volume[3] = 0  # the object vanishes on slice 3 and is back on slice 4
    model = MaskPromptRecorder()
    propagate_boxes(volume, np.array([[11, 11, 0, 21, 21, 4]]), model.segmenter, expand=24,
                    on_collapse="box", mask_prompt=True)
    # slices 2 (middle), 3 (prompted by slice 2's mask, empty), 4 (the box again), 1, 0
    assert [p is None for p in model.mask_prompts] == [True, False, True, False, False]
