"""Tests of vertspine.data.prompt_seg.mapper.PromptSegMapper: boxes, masks, flips, jitter, 3D."""
import numpy as np
import pytest
import torch

import vertspine  # noqa: F401  (makes detectron2 importable)
from vertspine.config import get_vertspine_cfg
from vertspine.data import build_dataset_mapper
from vertspine.data.prompt_seg import PromptSegMapper, preprocess_image, write_prompt_seg_npz

H, W = 16, 24  # S = 24: scale 1, so boxes and masks are checked in exact pixels


def labels_2d():
    labels = np.zeros((H, W), np.uint16)
    labels[2:6, 3:10] = 1
    labels[9:14, 12:21] = 5
    labels[1:3, 18:22] = 300
    return labels


@pytest.fixture
def record_2d(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = str(tmp_path / "XRay_case.npz")
    write_prompt_seg_npz(path, image, gts=labels_2d())
    return {"file_name": path, "image_id": "XRay_case", "modality": "XRay", "height": H,
            "width": W}


def mapper(is_train, **kwargs):
    options = dict(image_size=W, boxes_per_image=0, box_jitter=0, flip_prob=0.0)
    return PromptSegMapper(is_train=is_train, **{**options, **kwargs})


def test_test_mode_gives_every_object_with_its_tight_box(record_2d):
    out = mapper(False)(record_2d)
    assert out["gt_labels"].tolist() == [1, 5, 300]
    np.testing.assert_array_equal(out["boxes"].numpy(), [[3, 2, 9, 5], [12, 9, 20, 13],
                                                         [18, 1, 21, 2]])
    assert out["boxes"].dtype == torch.float32 and out["gt_masks"].dtype == torch.uint8
    for mask, value in zip(out["gt_masks"].numpy(), [1, 5, 300]):
        np.testing.assert_array_equal(mask[:H], labels_2d() == value)
        assert not mask[H:].any()  # padding rows
    assert (out["height"], out["width"], out["resized_size"]) == (H, W, (H, W))
    assert out["image"].shape == (3, W, W) and out["modality"] == "XRay"


def test_mapper_from_config(record_2d):
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "PromptSegMapper"
    cfg.INPUT.PROMPT_SEG.IMAGE_SIZE = 48
    out = build_dataset_mapper(cfg, is_train=False)(record_2d)
    assert out["image"].shape == (3, 48, 48) and out["resized_size"] == (32, 48)
    np.testing.assert_allclose(out["boxes"][0].numpy(), [6, 4, 18, 10])  # x2
    cfg.INPUT.PROMPT_SEG.FLIP_PROB = 1.5
    with pytest.raises(ValueError, match="INPUT.PROMPT_SEG.FLIP_PROB"):
        build_dataset_mapper(cfg, is_train=True)


def test_flips_move_image_boxes_and_masks_together(record_2d):
    plain = mapper(False)(record_2d)
    flipped = mapper(True, flip_prob=1.0)(record_2d)  # both flips, no jitter
    region = (slice(None), slice(0, H), slice(0, W))
    np.testing.assert_array_equal(flipped["image"].numpy()[region],
                                  plain["image"].numpy()[region][:, ::-1, ::-1])
    np.testing.assert_array_equal(flipped["gt_masks"].numpy()[region],
                                  plain["gt_masks"].numpy()[region][:, ::-1, ::-1])
    x0, y0, x1, y1 = plain["boxes"].numpy().T
    np.testing.assert_array_equal(flipped["boxes"].numpy(),
                                  np.stack([W - 1 - x1, H - 1 - y1, W - 1 - x0, H - 1 - y0], 1))
    for mask, box in zip(flipped["gt_masks"].numpy(), flipped["boxes"].numpy()):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        np.testing.assert_array_equal(box, [cols[0], rows[0], cols[-1], rows[-1]])


def test_box_jitter_moves_each_side_outwards_by_0_to_5_px_clipped(record_2d):
    np.random.seed(0)
    base = mapper(False)(record_2d)["boxes"].numpy()
    train = mapper(True, box_jitter=5)
    seen = set()
    for _ in range(60):
        boxes = train(record_2d)["boxes"].numpy()
        outward = (boxes - base) * np.array([-1, -1, 1, 1])
        assert (outward >= 0).all() and (outward <= 5).all()
        assert boxes[:, [0, 1]].min() >= 0 and (boxes[:, 2] <= W - 1).all() \
            and (boxes[:, 3] <= H - 1).all()
        seen.update(outward[0, 2:].tolist())  # box 0's right and bottom sides are never clipped
    assert seen == {0, 1, 2, 3, 4, 5}


def test_boxes_per_image_keeps_a_random_subset_with_matching_masks(record_2d):
    np.random.seed(1)
    out = mapper(True, boxes_per_image=2)(record_2d)
    labels = out["gt_labels"].tolist()
    assert len(labels) == 2 and set(labels) <= {1, 5, 300}
    for mask, value in zip(out["gt_masks"].numpy(), labels):
        np.testing.assert_array_equal(mask[:H], labels_2d() == value)


def test_3d_slices_random_draw_and_ct_window(tmp_path):
    volume = np.random.default_rng(2).integers(-1000, 1500, (5, 12, 12)).astype(np.int16)
    labels = np.zeros((5, 12, 12), np.uint8)
    labels[1:3, 2:6, 3:8] = 4
    path = str(tmp_path / "CT_vol.npz")
    write_prompt_seg_npz(path, volume, gts=labels, spacing=(2.5, 0.8, 0.8))
    record = {"file_name": path, "image_id": "CT_vol", "modality": "CT", "height": 12,
              "width": 12, "labelled_slices": [1, 2]}
    windowed = mapper(True, image_size=12, ct_window=(40, 400))
    np.random.seed(3)
    drawn = {windowed(record)["slice_index"] for _ in range(12)}
    assert drawn == {1, 2}
    out = windowed(dict(record, slice_index=2))
    assert out["slice_index"] == 2 and out["spacing"] == (2.5, 0.8, 0.8)
    np.testing.assert_allclose(out["image"].numpy(),
                               preprocess_image(volume[2], 12, (40, 400))[0])
    np.testing.assert_array_equal(out["boxes"].numpy(), [[3, 2, 7, 5]])
    mr = windowed(dict(record, slice_index=2, modality="MR"))  # not windowed
    np.testing.assert_allclose(mr["image"].numpy(), preprocess_image(volume[2], 12)[0])
    with pytest.raises(KeyError, match="slice_index"):
        mapper(False, image_size=12)(record)


def moving_object_record(tmp_path):
    """A 3D record of slice 2 of a volume where object 1 moves 2 px along x per slice (slices
    1-3) and object 2 is on slice 2 only; and its labels."""
    labels = np.zeros((5, 12, 12), np.uint8)
    for z, x in ((1, 1), (2, 3), (3, 5)):
        labels[z, 2:6, x:x + 4] = 1
    labels[2, 8:11, 8:11] = 2
    path = str(tmp_path / "CT_moving.npz")
    write_prompt_seg_npz(path, np.zeros((5, 12, 12), np.int16), gts=labels,
                         spacing=(2.5, 0.8, 0.8))
    return {"file_name": path, "image_id": "CT_moving", "modality": "CT", "height": 12,
            "width": 12, "slice_index": 2}, labels


def test_3d_boxes_from_adjacent_slices_with_their_probability(tmp_path):
    record, labels = moving_object_record(tmp_path)
    np.random.seed(0)
    always = mapper(True, image_size=12, neighbour_slice_box_prob=1.0)
    seen = set()
    for _ in range(20):
        out = always(record)
        np.testing.assert_array_equal(out["gt_masks"][0].numpy(), labels[2] == 1)  # own mask
        seen.add(tuple(out["boxes"][0].tolist()))
        np.testing.assert_array_equal(out["boxes"][1].numpy(), [8, 8, 10, 10])  # no neighbour
    assert seen == {(1, 2, 4, 5), (5, 2, 8, 5)}  # slice 1's box and slice 3's, never its own
    never = mapper(True, image_size=12, neighbour_slice_box_prob=0.0)(record)
    np.testing.assert_array_equal(never["boxes"][0].numpy(), [3, 2, 6, 5])
    edge = always(dict(record, slice_index=1))  # slice 0 does not hold it: slice 2's box
    np.testing.assert_array_equal(edge["boxes"][0].numpy(), [3, 2, 6, 5])
    with pytest.raises(ValueError, match="NEIGHBOUR_SLICE_BOX_PROB"):
        mapper(True, image_size=12, neighbour_slice_box_prob=1.5)


def test_3d_mask_prompts_are_the_box_slice_mask_flipped_with_the_image(tmp_path):
    record, labels = moving_object_record(tmp_path)
    np.random.seed(1)
    prompted = mapper(True, image_size=12, neighbour_slice_box_prob=1.0, mask_prompt_prob=1.0,
                      flip_prob=0.5)
    flips = {(fx, fy): (lambda m, fx=fx, fy=fy: m[::-1 if fy else 1, ::-1 if fx else 1])
             for fx in (0, 1) for fy in (0, 1)}
    seen = set()
    for _ in range(32):
        out = prompted(record)
        flip = [f for f, apply in flips.items()
                if np.array_equal(out["gt_masks"][0].numpy(), apply(labels[2] == 1))]
        assert len(flip) == 1
        prompt = out["mask_prompts"][0].numpy()
        source = [z for z in (1, 3) if np.array_equal(prompt, flips[flip[0]](labels[z] == 1))]
        assert len(source) == 1  # a neighbour's mask, flipped as the image
        rows, cols = np.nonzero(prompt)  # the box is that mask's (no jitter)
        np.testing.assert_array_equal(out["boxes"][0].numpy(),
                                      [cols.min(), rows.min(), cols.max(), rows.max()])
        seen.add((source[0], *flip[0]))
        assert out["has_mask_prompt"].tolist() == [True, False]  # object 2 has no neighbour
        assert not out["mask_prompts"][1].any()
        assert out["mask_prompts"].dtype == torch.uint8
    assert len(seen) == 8  # both neighbours, each flip
    plain = mapper(True, image_size=12, neighbour_slice_box_prob=1.0)(record)
    assert "mask_prompts" not in plain and "has_mask_prompt" not in plain
    own_box = mapper(True, image_size=12, mask_prompt_prob=1.0)(record)
    assert not own_box["has_mask_prompt"].any()  # boxes from their own slice get no prompt
    with pytest.raises(ValueError, match="MASK_PROMPT_PROB"):
        mapper(True, image_size=12, mask_prompt_prob=-0.1)


def test_3d_mask_prompts_are_dilated_or_eroded_by_at_most_the_distortion(tmp_path):
    record, labels = moving_object_record(tmp_path)
    np.random.seed(2)
    distorted = mapper(True, image_size=12, neighbour_slice_box_prob=1.0, mask_prompt_prob=1.0,
                       mask_prompt_distort=1)
    sizes = set()
    for _ in range(30):
        prompt = distorted(record)["mask_prompts"][0].numpy().astype(bool)
        sizes.add(int(prompt.sum()))
    # the 4 x 4 square: eroded to 2 x 2 (4 px), as is (16), dilated by the cross (16 + 16)
    assert sizes == {4, 16, 32}
