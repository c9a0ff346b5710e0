"""AutoAugment for detection: each operation's boxes vs the pixels it moves and vs PIL, the
photometric formulas, the policy (seeded, empty boxes, size-scaled constants) and the mapper."""
import copy
import math

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

import vertspine  # noqa: F401  (first)
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from vertspine.config import get_vertspine_cfg
from vertspine.data import VertspineDatasetMapper
from vertspine.data.transforms import (
    AUTOAUGMENT_OPS,
    POLICIES,
    AffineTransform,
    AutoAugmentDetection,
    AutoContrastTransform,
    BoxContentTranslateTransform,
    BrightnessTransform,
    CutoutTransform,
    EnhanceTransform,
    EqualizeTransform,
    SolarizeAddTransform,
    SolarizeTransform,
    rotation_matrix,
    shear_matrix,
    translation_matrix,
)
from vertspine.data.transforms.autoaugment import _Context

H, W = 120, 80  # a tall image, as lateral spine films
BOX = np.array([[20.0, 30.0, 50.0, 70.0]])  # XYXY; pixels 20..49 x 30..69 are bright


def rectangle_image(channels=3):
    image = np.zeros((H, W, channels), np.uint8)
    image[30:70, 20:50] = 255
    return image


def bright_box(image):
    """XYXY box of the pixels brighter than half (pixel i covers [i, i + 1))."""
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


def pil_affine(image, inverse_matrix):
    """PIL's affine warp (output -> input coefficients), bilinear, fill 0, per channel 0."""
    coefficients = tuple(np.asarray(inverse_matrix)[:2].reshape(-1))
    out = Image.fromarray(image[:, :, 0]).transform((W, H), Image.AFFINE, coefficients,
                                                     resample=Image.BILINEAR, fillcolor=0)
    return np.asarray(out)[:, :, None]


GEOMETRIC = {
    "rotate +25": rotation_matrix(H, W, 25.0),
    "rotate -30": rotation_matrix(H, W, -30.0),
    "translate x": translation_matrix(-17.0, 0.0),
    "translate y": translation_matrix(0.0, 23.0),
    "shear x": shear_matrix(H, W, 0.3, horizontal=True),
    "shear y": shear_matrix(H, W, -0.2, horizontal=False),
}


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_box_follows_the_bright_rectangle(name):
    transform = AffineTransform(GEOMETRIC[name], H, W, fill=0)
    moved = transform.apply_image(rectangle_image())
    assert moved.shape == (H, W, 3)
    np.testing.assert_allclose(transform.apply_box(BOX)[0], bright_box(moved), atol=1.5)


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_image_warp_matches_pil(name):
    matrix = GEOMETRIC[name]
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    ours = AffineTransform(matrix, H, W, fill=0).apply_image(rectangle_image(1))
    reference = pil_affine(rectangle_image(1), inverse)
    np.testing.assert_allclose(bright_box(ours), bright_box(reference), atol=1.0)
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 2.0


def test_rotation_is_counter_clockwise_like_pil_rotate_and_boxes_use_corners():
    degrees = 20.0
    ours = AffineTransform(rotation_matrix(H, W, degrees), H, W, fill=0)
    reference = np.asarray(Image.fromarray(rectangle_image(1)[:, :, 0]).rotate(
        degrees, resample=Image.BILINEAR, center=(W / 2, H / 2)))[:, :, None]
    np.testing.assert_allclose(bright_box(ours.apply_image(rectangle_image(1))),
                               bright_box(reference), atol=1.0)
    # the 4 corners rotated by hand (y down: counter-clockwise as displayed), then min/max
    t, (cx, cy) = math.radians(degrees), (W / 2, H / 2)
    corners = [(x, y) for x in (20.0, 50.0) for y in (30.0, 70.0)]
    xs = [cx + (x - cx) * math.cos(t) + (y - cy) * math.sin(t) for x, y in corners]
    ys = [cy - (x - cx) * math.sin(t) + (y - cy) * math.cos(t) for x, y in corners]
    np.testing.assert_allclose(ours.apply_box(BOX)[0], [min(xs), min(ys), max(xs), max(ys)])


def test_fill_value_and_inverse():
    transform = AffineTransform(translation_matrix(0.0, 30.0), H, W, fill=128)
    moved = transform.apply_image(rectangle_image())
    assert (moved[:30] == 128).all() and (moved[60:100, 20:50] == 255).all()
    np.testing.assert_allclose(transform.inverse().apply_box(transform.apply_box(BOX)), BOX)


def test_photometric_formulas():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    assert np.array_equal(SolarizeTransform(128).apply_image(image),
                          np.asarray(ImageOps.solarize(Image.fromarray(image), 128)))
    added = SolarizeAddTransform(60).apply_image(image).astype(int)
    expected = np.where(image < 128, np.minimum(image.astype(int) + 60, 255), image)
    assert np.array_equal(added, expected)
    halved = BrightnessTransform(0.5).apply_image(image)
    assert np.array_equal(halved, (image * 0.5).astype(np.uint8))
    low_contrast = (image // 4 + 50).astype(np.uint8)
    stretched = AutoContrastTransform().apply_image(low_contrast)
    reference = np.asarray(ImageOps.autocontrast(Image.fromarray(low_contrast)))
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.abs(stretched.astype(int) - reference.astype(int)).max() <= 1
    for kind in ("Color", "Contrast", "Sharpness"):
        assert np.array_equal(EnhanceTransform(kind, 1.0).apply_image(image), image)
    gray = np.repeat(low_contrast[:, :, :1], 3, axis=2)
    assert np.array_equal(EnhanceTransform("Color", 0.1).apply_image(gray), gray)  # no colour


def test_equalize_flattens_the_histogram_per_channel():
    image = np.repeat(np.linspace(100, 140, H * W).reshape(H, W, 1), 3, axis=2).astype(np.uint8)
    equalized = EqualizeTransform().apply_image(image)
    assert equalized.min() == 0 and equalized.max() > 240
    assert np.array_equal(EqualizeTransform().apply_image(image[:, :, :1]), equalized[:, :, :1])


def test_photometric_transforms_leave_boxes_and_cutout_fills():
    cutout = CutoutTransform(-5, 10, 12, 20, fill=128)
    out = cutout.apply_image(rectangle_image())
    assert (out[10:20, 0:12] == 128).all() and out[20:, :12].max() == 0
    shifted = BoxContentTranslateTransform([(20, 30, 50, 70)], dy=10, fill=128)
    out = shifted.apply_image(rectangle_image())
    assert (out[30:40, 20:50] == 128).all() and (out[40:70, 20:50] == 255).all()
    assert out[70:, 20:50].max() == 0  # content leaving the box is lost
    for transform in (cutout, shifted, SolarizeTransform(0), EqualizeTransform()):
        np.testing.assert_array_equal(transform.apply_box(BOX), BOX)


def test_policy_v2_has_15_subpolicies_of_known_operations():
    assert [len(s) for s in POLICIES["v2"]] == [3, 3, 2] + [3] * 12  # as TF's policy_v2
    assert {op for s in POLICIES["v2"] + POLICIES["v0"] for op, _, _ in s} <= set(AUTOAUGMENT_OPS)
    with pytest.raises(ValueError, match="v2"):
        AutoAugmentDetection("v9")


def test_pixel_constants_scale_with_the_image():
    for side, expected in ((640, 200.0), (1280, 400.0)):
        context = _Context(side, side // 2, side / 640, 128, np.zeros((0, 4)))
        np.random.seed(0)
        translate = AUTOAUGMENT_OPS["TranslateY_BBox"][0](8, context)
        assert abs(translate.matrix[1, 2]) == pytest.approx(expected)
        np.random.seed(0)
        cut = AUTOAUGMENT_OPS["Cutout"][0](8, context)
        assert cut.x1 - cut.x0 == 2 * int(expected * 0.4)  # half-side 100 x 8/10 x scale


def test_bbox_cutout_lands_in_a_box_and_skips_images_without_boxes():
    empty = _Context(H, W, 1.0, 128, np.zeros((0, 4)))
    assert AUTOAUGMENT_OPS["BBox_Cutout"][0](10, empty) is None
    assert AUTOAUGMENT_OPS["TranslateY_Only_BBoxes"][0](10, empty) is None
    context = _Context(H, W, 1.0, 128, BOX)
    for seed in range(20):
        np.random.seed(seed)
        cut = AUTOAUGMENT_OPS["BBox_Cutout"][0](10, context)
        cx, cy = (cut.x0 + cut.x1) // 2, (cut.y0 + cut.y1) // 2
        assert 20 <= cx < 50 and 30 <= cy < 70
        expected = (2 * int(0.75 * 30 / 2), 2 * int(0.75 * 40 / 2))  # box 30 x 40, level 10
        assert (cut.x1 - cut.x0, cut.y1 - cut.y0) == expected


def _augment(seed, boxes, policy="v2"):
    np.random.seed(seed)
    aug_input = T.AugInput(rectangle_image(), boxes=None if boxes is None else boxes.copy())
    transform = AutoAugmentDetection(policy)(aug_input)
    return aug_input.image, aug_input.boxes, transform


@pytest.mark.parametrize("policy", ["v2", "v0"])
def test_policy_is_seeded_and_works_without_boxes(policy):
    for seed in range(30):
        image_a, boxes_a, _ = _augment(seed, BOX, policy)
        image_b, boxes_b, _ = _augment(seed, BOX, policy)
        assert np.array_equal(image_a, image_b) and np.array_equal(boxes_a, boxes_b)
        assert image_a.shape == (H, W, 3) and image_a.dtype == np.uint8
        for empty in (None, np.zeros((0, 4))):
            image, boxes, _ = _augment(seed, empty, policy)
            assert image.shape == (H, W, 3)
    outputs = {_augment(seed, BOX)[0].tobytes() for seed in range(30)}
    assert len(outputs) > 10  # different sub-policies and magnitudes


def test_policy_boxes_are_the_transform_of_the_input_boxes():
    for seed in range(30):
        _, boxes, transform = _augment(seed, BOX)
        np.testing.assert_allclose(boxes, transform.apply_box(BOX))


def _mapper_record(tmp_path):
    path = str(tmp_path / "rect.png")
    cv2.imwrite(path, rectangle_image())
    return {"file_name": path, "height": H, "width": W, "image_id": 1, "annotations": [
        {"bbox": [20.0, 30.0, 30.0, 40.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}]}


def test_mapper_appends_the_policy_in_training_only(tmp_path):
    cfg = get_vertspine_cfg()
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (W,), 1000  # no resize
    cfg.INPUT.AUTOAUGMENT.ENABLED = True
    train = VertspineDatasetMapper(cfg, is_train=True)
    assert isinstance(train.augmentations.augs[-1], AutoAugmentDetection)
    assert not any(isinstance(a, AutoAugmentDetection)
                   for a in VertspineDatasetMapper(cfg, is_train=False).augmentations.augs)
    cfg.INPUT.AUTOAUGMENT.ENABLED = False
    assert not any(isinstance(a, AutoAugmentDetection)
                   for a in VertspineDatasetMapper(cfg, is_train=True).augmentations.augs)
    record = _mapper_record(tmp_path)
    for seed in range(8):
        np.random.seed(seed)
        mapped = train(copy.deepcopy(record))
        np.random.seed(seed)
        again = train(copy.deepcopy(record))
        assert mapped["image"].shape == (3, H, W)
        assert np.array_equal(mapped["image"].numpy(), again["image"].numpy())
        boxes = mapped["instances"].gt_boxes.tensor.numpy()
        assert np.array_equal(boxes, again["instances"].gt_boxes.tensor.numpy())
        assert len(boxes) <= 1 and (boxes[:, 2:] <= [W, H]).all() and (boxes >= 0).all()
