"""Helpers of the VertFound tests: tiny configs, models and batches (imported by the tests)."""
import os

import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.data.phantom import VERTEBRA_LEVELS

INSTANT = os.path.join(REPO_ROOT, "configs/quick_schedules/vertfound_tiny_instant_test.yaml")


def tiny_cfg(*opts):
    """The instant config with the 25 level names given (no dataset needed), plus ``opts``."""
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(INSTANT)
    cfg.MODEL.VERTFOUND.TEXT.CLASS_NAMES = list(VERTEBRA_LEVELS)
    cfg.merge_from_list(list(opts))
    return cfg


def tiny_model(cfg=None):
    torch.manual_seed(0)
    return build_model(cfg if cfg is not None else tiny_cfg())


def vertebra_opts(root):
    """``KEY VALUE`` overrides registering the tiny phantom's vertebra splits."""
    entries = [
        [f"tiny_vertebrae_{split}", os.path.join(root, "annotations", f"vertebrae_{split}.json"),
         os.path.join(root, "images", split)]
        for split in ("train", "val")
    ]
    return ["DATASETS.COCO_JSON", repr(entries), "DATASETS.TRAIN", "('tiny_vertebrae_train',)",
            "DATASETS.TEST", "('tiny_vertebrae_val',)"]


def synthetic_input(num_boxes, *, size=(96, 80), seed=0, image_id=0):
    """A mapper-like input: a random RGB image and ``num_boxes`` stacked boxes, top to bottom."""
    g = torch.Generator().manual_seed(seed)
    height, width = size
    image = torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
    step = height / max(num_boxes, 1)
    boxes = torch.tensor([[2.0, i * step + 1, width * 0.75, (i + 1) * step - 1]
                          for i in range(num_boxes)])
    inst = Instances((height, width))
    inst.gt_boxes = Boxes(boxes.reshape(-1, 4))
    inst.gt_classes = torch.arange(num_boxes, dtype=torch.long) % 25
    inst.gt_indices = torch.arange(num_boxes, dtype=torch.long)
    inst.gt_ann_ids = torch.arange(num_boxes, dtype=torch.long)
    return {"image": image, "instances": inst, "height": height, "width": width,
            "image_id": image_id, "file_name": f"synthetic_{image_id}.png"}


def records(name, count):
    return DatasetCatalog.get(name)[:count]
