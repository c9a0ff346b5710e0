"""Tests of vertspine.data.prompt_seg.npz_format: the challenge npz, read, written and refused."""
import logging

import numpy as np
import pytest

import vertspine  # noqa: F401  (makes detectron2 importable)
from vertspine.data.prompt_seg import (
    NoBoxesError,
    PromptSegFormatError,
    prompt_boxes,
    read_prompt_seg_npz,
    read_segs,
    scan_inference_inputs,
    write_prompt_seg_npz,
    write_segs,
)
from vertspine.data.prompt_seg.npz_format import check_boxes
from vertspine.data.readers import NpzReader


def case_2d(grey=False):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 20) if grey else (12, 20, 3), dtype=np.uint8)
    gts = np.zeros((12, 20), np.uint16)
    gts[2:5, 3:9], gts[7:11, 10:18] = 1, 300  # a label > 255 must survive
    return imgs, gts


def case_3d():
    rng = np.random.default_rng(1)
    imgs = rng.integers(-1000, 1000, (6, 10, 8)).astype(np.int16)
    gts = np.zeros((6, 10, 8), np.uint8)
    gts[1:4, 2:6, 3:7] = 2
    return imgs, gts


@pytest.mark.parametrize("grey", [False, True])
def test_round_trip_2d(tmp_path, grey):
    imgs, gts = case_2d(grey)
    boxes = np.array([[3, 2, 8, 4], [10.5, 7, 17, 10]])
    path = str(tmp_path / "XRay_a.npz")
    write_prompt_seg_npz(path, imgs, gts=gts, boxes=boxes)
    case = read_prompt_seg_npz(path, require_gts=True, require_boxes=True)
    assert case.spatial_dims == 2 and case.spacing is None and case.spatial_shape == (12, 20)
    np.testing.assert_array_equal(case.imgs, imgs)
    np.testing.assert_array_equal(case.gts, gts)
    assert case.gts.dtype == np.uint16 and case.gts.max() == 300
    np.testing.assert_array_equal(case.boxes, boxes)


def test_round_trip_3d_spacing_is_array_order_and_stored_as_simpleitk_xyz(tmp_path):
    imgs, gts = case_3d()
    boxes = np.array([[3, 2, 1, 6, 5, 3]])
    path = str(tmp_path / "CT_a.npz")
    write_prompt_seg_npz(path, imgs, gts=gts, boxes=boxes, spacing=(2.5, 0.7, 0.8))
    with np.load(path) as raw:
        np.testing.assert_array_equal(raw["spacing"], [0.8, 0.7, 2.5])  # (x, y, z) on disk
    case = read_prompt_seg_npz(path, require_gts=True)
    assert case.spatial_dims == 3 and case.spacing == (2.5, 0.7, 0.8)
    np.testing.assert_array_equal(case.imgs, imgs)
    np.testing.assert_array_equal(case.boxes, boxes)
    assert NpzReader().read(path)[1].spacing == case.spacing  # the generic reader agrees


def test_spacing_order_zyx_and_the_warning_for_array_order_files(tmp_path, caplog):
    imgs, gts = case_3d()
    path = str(tmp_path / "CT_b.npz")
    np.savez(path, imgs=imgs, gts=gts, spacing=np.array([2.5, 0.8, 0.8]))  # array order
    with caplog.at_level(logging.WARNING):
        assert read_prompt_seg_npz(path).spacing == (0.8, 0.8, 2.5)
    assert "spacing_order='zyx'" in caplog.text
    assert read_prompt_seg_npz(path, spacing_order="zyx").spacing == (2.5, 0.8, 0.8)


def test_segs_uint16_keeps_labels_above_255(tmp_path):
    segs = np.zeros((4, 5), np.int64)
    segs[1, 2], segs[3, 4] = 256, 65535
    path = str(tmp_path / "pred.npz")
    write_segs(path, segs)
    out = read_segs(path, (4, 5))
    assert out.dtype == np.uint16 and out[1, 2] == 256 and out[3, 4] == 65535
    with pytest.raises(PromptSegFormatError, match="0..65535"):
        write_segs(str(tmp_path / "bad.npz"), segs + 1)
    with pytest.raises(PromptSegFormatError, match="shape"):
        read_segs(path, (5, 4))


def _save(tmp_path, name, **arrays):
    path = str(tmp_path / name)
    np.savez(path, **arrays)
    return path


def test_bad_files_name_the_file_and_the_fix(tmp_path):
    imgs, gts = case_2d()
    volume, labels = case_3d()
    cases = [
        (dict(gts=gts), "no 'imgs' array"),
        (dict(imgs=imgs.astype(np.float32), gts=gts), "uint8"),
        (dict(imgs=imgs, gts=gts[:, :-1]), "spatial shape"),
        (dict(imgs=imgs, gts=gts.astype(np.float32)), "integer array"),
        (dict(imgs=imgs, gts=gts.astype(np.int16) - 1), "negative labels"),
        (dict(imgs=volume, gts=labels), "3D case without 'spacing'"),
        (dict(imgs=volume, gts=labels, spacing=np.array([1.0, 0.0, 1.0])), "positive"),
    ]
    for i, (arrays, message) in enumerate(cases):
        path = _save(tmp_path, f"case{i}.npz", **arrays)
        with pytest.raises(PromptSegFormatError, match=message) as error:
            read_prompt_seg_npz(path)
        assert path in str(error.value)
    no_boxes = _save(tmp_path, "nob.npz", imgs=imgs)
    with pytest.raises(PromptSegFormatError, match="'boxes'"):
        read_prompt_seg_npz(no_boxes, require_boxes=True)
    not_npz = tmp_path / "junk.npz"
    not_npz.write_bytes(b"not a zip")
    with pytest.raises(PromptSegFormatError, match="not a readable npz"):
        read_prompt_seg_npz(str(not_npz))


@pytest.mark.parametrize("box,message", [
    ([0, 0, 21.5, 5], "outside the image"),     # x_max beyond W - 1 + 1 px tolerance
    ([-1.5, 0, 5, 5], "outside the image"),
    ([6, 0, 5, 5], "x_min > x_max"),
    ([0, 7, 5, 5], "y_min > y_max"),
    ([0, np.nan, 5, 5], "NaN"),
])
def test_bad_2d_boxes(box, message):
    with pytest.raises(PromptSegFormatError, match=message) as error:
        check_boxes("f.npz", np.array([box]), (12, 20))
    assert "f.npz" in str(error.value)


def test_boxes_within_tolerance_are_clipped_and_3d_z_is_checked():
    clipped = check_boxes("f.npz", np.array([[-1, -0.5, 20, 12]]), (12, 20))
    np.testing.assert_array_equal(clipped, [[0, 0, 19, 11]])
    with pytest.raises(PromptSegFormatError, match="z_min > z_max"):
        check_boxes("f.npz", np.array([[0, 0, 4, 3, 3, 2]]), (6, 10, 8))
    with pytest.raises(PromptSegFormatError, match="outside the image"):
        check_boxes("f.npz", np.array([[0, 0, 0, 3, 3, 7.5]]), (6, 10, 8))
    with pytest.raises(PromptSegFormatError, match=r"\(N, 6\)"):
        check_boxes("f.npz", np.array([[0, 0, 3, 3]]), (6, 10, 8))


def test_zero_boxes_are_a_reported_skip(tmp_path, caplog):
    imgs, _ = case_2d()
    empty = _save(tmp_path, "XRay_empty.npz", imgs=imgs, boxes=np.zeros((0, 4)))
    full = _save(tmp_path, "XRay_full.npz", imgs=imgs, boxes=np.array([[1, 1, 4, 4]]))
    with pytest.raises(NoBoxesError, match="zero boxes"):
        read_prompt_seg_npz(empty, require_boxes=True)
    with caplog.at_level(logging.WARNING):
        run, skipped = scan_inference_inputs([empty, full])
    assert run == [full] and skipped == [(empty, "zero boxes")]
    assert "XRay_empty.npz" in caplog.text and "1 of 2" in caplog.text


def test_prompt_boxes_2d_tight_and_3d_middle_slice():
    _, gts = case_2d()
    values, boxes = prompt_boxes(gts)
    assert values.tolist() == [1, 300]
    np.testing.assert_array_equal(boxes, [[3, 2, 8, 4], [10, 7, 17, 10]])
    gts = np.zeros((7, 10, 12), np.uint8)
    gts[1, 0:9, 0:11] = 1    # a wide first slice
    gts[2:5, 3:5, 4:7] = 1   # z range 1..4, middle slice 1 + 3 // 2 = 2
    gts[0, 1, 1], gts[6, 8, 9] = 2, 2  # misses its middle slice 3: box over all slices
    values, boxes = prompt_boxes(gts)
    np.testing.assert_array_equal(boxes, [[4, 3, 1, 6, 4, 4], [1, 1, 0, 9, 8, 6]])
