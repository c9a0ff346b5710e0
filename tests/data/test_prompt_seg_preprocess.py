"""Tests of vertspine.data.prompt_seg.preprocess against a direct cv2/numpy computation."""
import cv2
import numpy as np
import pytest

import vertspine  # noqa: F401  (makes detectron2 importable)
from vertspine.data.prompt_seg import (
    mask_boxes,
    preprocess_image,
    resize_labels,
    resized_shape,
    scale_boxes,
)


def reference(image_3c: np.ndarray, size: int) -> np.ndarray:
    """LiteMedSAM's steps written out: resize_longest_side (INTER_AREA), min-max, pad."""
    h, w = image_3c.shape[:2]
    scale = size * 1.0 / max(h, w)
    new_w, new_h = int(w * scale + 0.5), int(h * scale + 0.5)
    resized = cv2.resize(image_3c, (new_w, new_h), interpolation=cv2.INTER_AREA)
    norm = (resized - resized.min()) / np.clip(resized.max() - resized.min(), 1e-8, None)
    padded = np.pad(norm, ((0, size - new_h), (0, size - new_w), (0, 0)))
    return padded.transpose(2, 0, 1)


@pytest.mark.parametrize("shape,size", [((40, 70, 3), 32), ((21, 13, 3), 32), ((30, 30, 3), 64)])
def test_rgb_uint8_equals_litemedsam(shape, size):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out, (h, w) = preprocess_image(image, size)
    assert out.shape == (3, size, size) and out.dtype == np.float32
    assert (h, w) == resized_shape(shape[0], shape[1], size)
    np.testing.assert_allclose(out, reference(image, size), atol=1e-6)
    assert out[:, h:].max(initial=0) == 0 and out[:, :, w:].max(initial=0) == 0
    assert out.min() == 0 and out.max() == 1


def test_grey_becomes_three_equal_channels():
    grey = np.random.default_rng(1).integers(0, 256, (50, 33), dtype=np.uint8)
    out, _ = preprocess_image(grey, 32)
    np.testing.assert_allclose(out, reference(np.repeat(grey[..., None], 3, -1), 32), atol=1e-6)


def test_ct_window_clips_hounsfield_units_before_min_max():
    hu = np.random.default_rng(2).integers(-1000, 1500, (40, 40)).astype(np.int16)
    out, _ = preprocess_image(hu, 32, ct_window=(40, 400))
    windowed = np.clip(hu.astype(np.float32), -160, 240)
    np.testing.assert_allclose(out, reference(np.repeat(windowed[..., None], 3, -1), 32),
                               atol=1e-6)
    plain, _ = preprocess_image(hu, 32)
    assert not np.allclose(out, plain)
    with pytest.raises(ValueError, match="CT_WINDOW"):
        preprocess_image(hu, 32, ct_window=(40, 0))


def test_boxes_scale_in_float_and_clip_to_the_resized_image():
    # 100 x 50 image to 32: factor 0.32, resized (32, 16)
    boxes = scale_boxes(np.array([[3, 5, 49, 99], [10, 10, 20, 30]]), 100, 50, 32)
    np.testing.assert_allclose(boxes, [[0.96, 1.6, 15, 31], [3.2, 3.2, 6.4, 9.6]])


def test_mask_boxes_are_tight_inclusive_indices_and_labels_resize_nearest():
    labels = np.zeros((8, 10), np.uint16)
    labels[1:4, 2:7], labels[5, 9], labels[6:8, 0:2] = 7, 300, 7
    np.testing.assert_array_equal(mask_boxes(labels, [7, 300]), [[0, 1, 6, 7], [9, 5, 9, 5]])
    big = resize_labels(labels, 20)  # x2 nearest, padded to 20 x 20
    np.testing.assert_array_equal(big[:16, :20], np.kron(labels, np.ones((2, 2), np.uint16)))
    assert big.dtype == np.uint16 and not big[16:].any()
