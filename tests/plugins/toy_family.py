"""A model family that lives outside vertspine: it registers itself on import, as a family does.

Imported by ``tests/test_toy_family.py`` in a fresh process, before ``train_net.main``. Nothing in
vertspine names it: its config node (``MODEL.TOY``), class-count key, meta-architecture, dataset
mapper, evaluator and datasets are all registered here.

The task: images whose value is constant per image (``level`` in 0..1), class 1 when the level is
above 0.5. The model is a linear layer on the image mean.
"""
import numpy as np
import torch
from detectron2.config import CfgNode as CN
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from vertspine.config import register_config
from vertspine.data import MAPPER_REGISTRY, register_num_classes_key
from vertspine.evaluation import register_evaluator

NUM_SAMPLES = 16
# Every record the toy model's forward received in training (checked by the test).
SEEN_LEVELS = []


@register_config
def add_toy_config(cfg: CN) -> CN:
    """``MODEL.TOY``: the toy family's keys."""
    cfg.MODEL.TOY = CN()
    # Number of classes the toy classifier predicts.
    cfg.MODEL.TOY.NUM_CLASSES = 2
    # Side of the square images the toy mapper makes (pixels).
    cfg.MODEL.TOY.IMAGE_SIZE = 8
    return cfg


register_num_classes_key("ToyClassifier", "MODEL.TOY.NUM_CLASSES")


@META_ARCH_REGISTRY.register()
class ToyClassifier(nn.Module):
    """Linear classifier on the mean of ``image`` [1, S, S]; loss cross-entropy."""

    def __init__(self, cfg):
        super().__init__()
        self.linear = nn.Linear(1, cfg.MODEL.TOY.NUM_CLASSES)
        self.register_buffer("device_probe", torch.zeros(0), persistent=False)
        self.to(torch.device(cfg.MODEL.DEVICE))

    def forward(self, batched_inputs):
        means = torch.stack([x["image"].to(self.device_probe.device).mean() for x in batched_inputs])
        logits = self.linear(means[:, None])
        if self.training:
            SEEN_LEVELS.extend(float(x["level"]) for x in batched_inputs)
            labels = torch.tensor([x["label"] for x in batched_inputs], device=logits.device)
            return {"loss_toy": F.cross_entropy(logits, labels)}
        return [{"toy_logits": row} for row in logits]


@MAPPER_REGISTRY.register()
class ToyMapper:
    """Record ``{"level", "label"}`` -> ``image`` [1, S, S] filled with ``level``."""

    def __init__(self, cfg, is_train: bool = True, **_unused):
        self.size = cfg.MODEL.TOY.IMAGE_SIZE

    def __call__(self, record):
        image = torch.full((1, self.size, self.size), record["level"], dtype=torch.float32)
        return {**record, "image": image}


class ToyAccuracy(DatasetEvaluator):
    def reset(self):
        self.correct, self.count = 0, 0

    def process(self, inputs, outputs):
        for x, y in zip(inputs, outputs):
            self.correct += int(int(y["toy_logits"].argmax()) == x["label"])
            self.count += 1

    def evaluate(self):
        return {"toy": {"accuracy": 100.0 * self.correct / self.count, "count": self.count}}


@register_evaluator("toy_accuracy")
def build_toy_evaluator(cfg, dataset_name, output_folder):
    return ToyAccuracy()


def _records(split: str):
    levels = np.random.default_rng(0 if split == "train" else 1).uniform(0, 1, NUM_SAMPLES)
    return [{"image_id": i, "level": float(v), "label": int(v > 0.5)} for i, v in enumerate(levels)]


for _split in ("train", "val"):
    DatasetCatalog.register(f"toy_{_split}", lambda split=_split: _records(split))
    MetadataCatalog.get(f"toy_{_split}").set(thing_classes=["low", "high"],
                                              evaluator_type="toy_accuracy")
