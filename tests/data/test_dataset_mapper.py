"""Tests of vertspine.data.dataset_mapper: detectron2's mapper on 16-bit PNG and DICOM."""
import copy

import cv2
import numpy as np
import pytest
import torch

import vertspine  # noqa: F401  (makes detectron2 importable)
from detectron2.data import transforms as T
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.structures import BoxMode
from test_image_io import expected_windowed_uint8, write_dicom  # tests/data is on sys.path
from vertspine.config import get_vertspine_cfg
from vertspine.data.dataset_mapper import VertspineDatasetMapper

H, W = 32, 48
BOX = [2.0, 3.0, 12.0, 8.0]  # XYXY_ABS


def record(file_name):
    return {
        "file_name": file_name,
        "height": H,
        "width": W,
        "image_id": 7,
        "annotations": [
            {"bbox": BOX, "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1, "iscrowd": 0}
        ],
    }


@pytest.fixture
def png16(tmp_path):
    """A 16-bit gray PNG whose min-max mapping is 0 on the left half, 255 on the right."""
    image = np.full((H, W), 1000, np.uint16)
    image[:, W // 2 :] = 5000
    path = str(tmp_path / "x16.png")
    cv2.imwrite(path, image)
    expected = np.zeros((H, W), np.uint8)
    expected[:, W // 2 :] = 255
    return path, expected


def mapper(is_train=True, augmentations=(), image_format="BGR"):
    return VertspineDatasetMapper(
        is_train=is_train, augmentations=list(augmentations), image_format=image_format
    )


def test_16bit_png_training(png16):
    path, expected = png16
    source = record(path)
    out = mapper()(source)
    assert out["image"].shape == (3, H, W) and out["image"].dtype == torch.uint8
    assert all(torch.equal(out["image"][c], torch.from_numpy(expected)) for c in range(3))
    instances = out["instances"]
    assert instances.image_size == (H, W)
    assert instances.gt_boxes.tensor.tolist() == [BOX]
    assert instances.gt_classes.tolist() == [1]
    assert source == record(path)  # the input record is not modified


def test_dicom_with_flip_augmentation(tmp_path):
    path = write_dicom(str(tmp_path / "ct.dcm"))
    out = mapper(augmentations=[T.RandomFlip(prob=1.0)], image_format="RGB")(record(path))
    flipped = expected_windowed_uint8()[:, ::-1]
    assert out["image"].shape == (3, H, W)
    assert all(torch.equal(out["image"][c], torch.from_numpy(flipped.copy())) for c in range(3))
    assert out["instances"].gt_boxes.tensor.tolist() == [[W - 12.0, 3.0, W - 2.0, 8.0]]


def test_from_config_inference_resizes_and_drops_annotations(png16):
    path, _ = png16
    cfg = get_vertspine_cfg()
    cfg.INPUT.MIN_SIZE_TEST = 64
    out = VertspineDatasetMapper(cfg, is_train=False)(record(path))
    assert out["image"].shape == (3, 64, 96)
    assert "annotations" not in out and "instances" not in out
    assert (out["height"], out["width"]) == (H, W)


def test_grayscale_format(png16):
    path, expected = png16
    out = mapper(image_format="L")(record(path))
    assert out["image"].shape == (1, H, W)
    assert torch.equal(out["image"][0], torch.from_numpy(expected))


def test_size_mismatch_is_reported(png16):
    path, _ = png16
    wrong = dict(record(path), height=H + 1)
    with pytest.raises(SizeMismatchError, match="Mismatched image shape"):
        mapper()(copy.deepcopy(wrong))
