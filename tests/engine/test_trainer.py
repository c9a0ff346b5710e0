"""Trainer's loaders: chosen by DATALOADER.BUILDER; the validation-loss loader uses the mapper's
own evaluation mapping (no resize assumed by the Trainer), equal to the previous construction."""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, build_detection_test_loader
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from vertspine.config import get_vertspine_cfg
from vertspine.data import (
    LOADER_REGISTRY,
    VertspineDatasetMapper,
    build_dataset_mapper,
    register_image_mask_folders,
    unregister_dataset,
)
from vertspine.engine import Trainer

@LOADER_REGISTRY.register()
class _RecordingLoader:
    """Returns what it was given instead of a loader."""

    @staticmethod
    def build_train_loader(cfg, mapper):
        return ("train", mapper)

    @staticmethod
    def build_test_loader(cfg, dataset_name, mapper):
        return ("test", dataset_name, mapper)


def test_train_and_test_loaders_come_from_the_configured_builder():
    cfg = get_vertspine_cfg()
    cfg.DATALOADER.BUILDER = "_RecordingLoader"
    kind, mapper = Trainer.build_train_loader(cfg)
    assert kind == "train" and type(mapper) is VertspineDatasetMapper and mapper.is_train
    kind, name, mapper = Trainer.build_test_loader(cfg, "any_dataset")
    assert (kind, name) == ("test", "any_dataset") and not mapper.is_train
    kind, name, mapper = Trainer.build_validation_loss_loader(cfg, "any_dataset")
    assert (kind, name) == ("test", "any_dataset") and mapper.is_train  # ground truth kept


@pytest.fixture
def detection_dataset(tmp_path):
    path = str(tmp_path / "x.png")
    cv2.imwrite(path, np.random.default_rng(0).integers(0, 255, (32, 48), dtype=np.uint8))
    record = {"file_name": path, "image_id": 0, "height": 32, "width": 48, "annotations": [
        {"bbox": [4.0, 6.0, 20.0, 18.0], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0,
         "iscrowd": 0}]}
    DatasetCatalog.register("_trainer_val_loss", lambda: [record])
    yield "_trainer_val_loss"
    DatasetCatalog.remove("_trainer_val_loss")


def test_validation_loss_batches_equal_the_previous_construction(detection_dataset):
    cfg = get_vertspine_cfg()
    cfg.DATALOADER.NUM_WORKERS = 0  # mapping in this process: its random draws would show
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.RANDOM_FLIP = 16, 1000, "horizontal"
    previous = build_dataset_mapper(cfg, is_train=True, augmentations=[
        T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)])
    expected = next(iter(build_detection_test_loader(cfg, detection_dataset, mapper=previous)))
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    ours = next(iter(Trainer.build_validation_loss_loader(cfg, detection_dataset)))
    assert np.array_equal(np.random.get_state()[1], state)  # no random number drawn
    assert list(ours[0]["image"].shape) == [3, 16, 24]
    assert torch.equal(ours[0]["image"], expected[0]["image"])
    assert torch.equal(ours[0]["instances"].gt_boxes.tensor,
                       torch.tensor([[2.0, 3.0, 10.0, 9.0]]))  # boxes halved with the image
    assert torch.equal(ours[0]["instances"].gt_boxes.tensor,
                       expected[0]["instances"].gt_boxes.tensor)


@pytest.fixture
def segmentation_dataset(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    os.makedirs(images), os.makedirs(masks)
    cv2.imwrite(str(images / "a.png"), np.full((40, 60, 3), 100, np.uint8))
    mask = np.zeros((40, 60), np.uint8)
    mask[10:30, 20:40] = 1
    cv2.imwrite(str(masks / "a.png"), mask)
    register_image_mask_folders("_trainer_seg", str(images), str(masks), ["body"])
    yield "_trainer_seg", mask
    unregister_dataset("_trainer_seg")


def test_segmentation_ground_truth_in_the_frame_each_loader_needs(segmentation_dataset):
    name, mask = segmentation_dataset
    cfg = get_vertspine_cfg()
    cfg.INPUT.DATASET_MAPPER, cfg.INPUT.FORMAT, cfg.INPUT.RANDOM_FLIP = "SemSegDatasetMapper", \
        "RGB", "horizontal"
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 20, 1000
    cfg.DATALOADER.NUM_WORKERS, cfg.MODEL.ROI_HEADS.NUM_CLASSES = 0, 1
    (val,) = next(iter(Trainer.build_validation_loss_loader(cfg, name)))
    (test,) = next(iter(Trainer.build_test_loader(cfg, name)))
    # validation loss: the logits' frame (resized, never flipped); test: the original mask
    assert list(val["image"].shape) == [3, 20, 30] and list(val["sem_seg"].shape) == [20, 30]
    assert int(val["sem_seg"].sum()) == 10 * 10 and bool(val["sem_seg"][5:15, 10:20].all())
    assert test["sem_seg"].dtype == torch.int64
    assert torch.equal(test["sem_seg"], torch.as_tensor(mask, dtype=torch.int64))
    assert "sem_seg_file_name" in test and (test["height"], test["width"]) == (40, 60)
