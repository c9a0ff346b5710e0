"""ImageLabelDatasetMapper: labels from records, the deterministic square, no test-time
randomness, flips only in training."""
import numpy as np
import pytest
import torch
from PIL import Image

from vertspine.config import get_vertspine_cfg
from vertspine.data import MAPPER_REGISTRY, ImageLabelDatasetMapper, build_dataset_mapper
from vertspine.data.image_label_mapper import FixedSquare, record_label


@pytest.mark.parametrize("record, label", [
    ({"label": 3, "abnormal": 0, "annotations": [{}]}, 3),
    ({"abnormal": 0, "annotations": [{}]}, 0),     # VinDr: "No finding" decides, not boxes
    ({"abnormal": 1, "annotations": []}, 1),
    ({"annotations": [{"bbox": [0, 0, 1, 1]}]}, 1),
    ({"annotations": []}, 0),
    ({}, 0),
])
def test_label_order_label_then_abnormal_then_annotations(record, label):
    assert record_label(record) == label


def _image(path, height, width):
    rng = np.random.default_rng(height * 1000 + width)
    Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8)).save(path)
    return {"file_name": str(path), "image_id": 7, "height": height, "width": width,
            "annotations": [{"bbox": [1, 1, 5, 5]}]}


def _cfg(**input_keys):
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER = "ImageLabelDatasetMapper"
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (40,), 1000
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 40, 1000
    for key, value in input_keys.items():
        cfg.INPUT[key] = value
    return cfg


def test_registered_and_test_mapping_is_deterministic(tmp_path):
    assert MAPPER_REGISTRY.get("ImageLabelDatasetMapper") is ImageLabelDatasetMapper
    record = _image(tmp_path / "a.png", 60, 30)
    mapper = build_dataset_mapper(_cfg(RANDOM_FLIP="horizontal"), is_train=False)
    first, second = mapper(record), mapper(record)
    assert first["image"].shape == (3, 80, 40)  # short side 30 -> 40, aspect kept
    assert torch.equal(first["image"], second["image"])
    assert first["label"] == 1 and "annotations" not in first and first["image_id"] == 7
    assert "annotations" in record  # the record itself is not modified


def test_training_flip_is_random_and_test_has_none(tmp_path):
    record = _image(tmp_path / "b.png", 40, 40)
    cfg = _cfg(RANDOM_FLIP="horizontal")
    train = build_dataset_mapper(cfg, is_train=True)
    images = {tuple(train(record)["image"][0, 0, :3].tolist()) for _ in range(30)}
    assert len(images) == 2  # flipped and not
    test = build_dataset_mapper(cfg, is_train=False)
    original = np.asarray(Image.open(record["file_name"]))
    assert np.array_equal(test(record)["image"][0].numpy(), original)


def test_square_pad_keeps_the_whole_image_centred(tmp_path):
    record = _image(tmp_path / "c.png", 40, 80)  # resized to 40 x 80, then into 64 x 64
    mapper = build_dataset_mapper(_cfg(SQUARE_SIZE=64, SQUARE_PAD_VALUE=7), is_train=False)
    image = mapper(record)["image"]
    assert image.shape == (3, 64, 64)
    assert (image[:, :16] == 7).all() and (image[:, 48:] == 7).all()  # 32 rows centred
    content = image[0, 16:48].float()
    expected = np.asarray(Image.open(record["file_name"]).resize((64, 32), Image.BILINEAR))
    assert np.abs(content.numpy() - expected).max() <= 1


def test_square_crop_takes_the_centre(tmp_path):
    record = _image(tmp_path / "d.png", 40, 100)
    mapper = build_dataset_mapper(_cfg(SQUARE_SIZE=40, SQUARE_MODE="crop"), is_train=False)
    image = mapper(record)["image"]
    original = np.asarray(Image.open(record["file_name"]))
    assert image.shape == (3, 40, 40) and np.array_equal(image[0].numpy(), original[:, 30:70])


def test_bad_square_settings_are_named():
    with pytest.raises(ValueError, match="SQUARE_MODE"):
        FixedSquare(32, "stretch")
    with pytest.raises(ValueError, match="SQUARE_SIZE"):
        FixedSquare(0)


def test_validation_loss_mapping_replaces_the_augmentations(tmp_path):
    """The Trainer's validation-loss loader: training mapping (labels kept) with only a resize."""
    from detectron2.data import transforms as T

    record = _image(tmp_path / "e.png", 40, 60)
    mapper = build_dataset_mapper(_cfg(RANDOM_FLIP="horizontal", SQUARE_SIZE=32), is_train=True,
                                  augmentations=[T.ResizeShortestEdge(20, 1000)])
    outputs = [mapper(record) for _ in range(5)]
    assert all(torch.equal(o["image"], outputs[0]["image"]) for o in outputs)  # no flip
    assert outputs[0]["image"].shape == (3, 32, 32) and outputs[0]["label"] == 1
