"""Image-level classification on any detectron2 backbone, registered as
``MODEL.META_ARCHITECTURE "ImageClassifier"``.

Backbone (``build_backbone``: a timm network, a detectron2 ResNet, an LVM-Med encoder, ...) ->
global pooling of one feature over each image's valid area -> FC head -> one logit (binary,
sigmoid + BCE) or C logits (softmax + cross-entropy). Used for the VinDr-SpineXR
abnormal-vs-normal classifier (DenseNet-121/169/201, BCE on one logit) and for LVM-Med's
linear-probe / fine-tuning classification ("1-fcn" or "fcns" heads).
"""
import logging
from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import Tensor, nn

from .checkpoint import backbone_loaded_fully
from .head import ClassificationHead, masked_global_pool
from .loss import ClassificationLoss

__all__ = ["ImageClassifier"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class ImageClassifier(nn.Module):
    """Backbone, masked global pooling of ``in_feature``, FC head, classification loss.

    With ``freeze_backbone`` (a linear probe), backbone parameters do not require gradients,
    the backbone runs without autograd, and :meth:`train` keeps the backbone in eval mode, so
    its BatchNorm running statistics never change either.
    """

    @configurable
    def __init__(self, *, backbone: Backbone, head: ClassificationHead, loss: ClassificationLoss,
                 in_feature: str, pixel_mean: Sequence[float], pixel_std: Sequence[float],
                 pool: str = "avg", freeze_backbone: bool = False):
        """
        Args:
            backbone: any detectron2 backbone with ``in_feature`` among its outputs.
            head: maps [B, C_in] pooled features to [B, num_logits] logits.
            loss: the training loss on (logits, labels).
            in_feature: the backbone output pooled, e.g. "final" or "res5".
            pixel_mean, pixel_std: per-channel normalisation in ``INPUT.FORMAT`` order, on the
                0-255 pixel scale; they must match the backbone's pretraining.
            pool: "avg" or "max".
            freeze_backbone: linear probe (see the class docstring).
        """
        super().__init__()
        shapes = backbone.output_shape()
        if in_feature not in shapes:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.IN_FEATURE {in_feature!r} is not an output "
                             f"of the backbone; its outputs are {sorted(shapes)}.")
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"MODEL.PIXEL_MEAN {list(pixel_mean)} and MODEL.PIXEL_STD "
                             f"{list(pixel_std)} must have one value per channel each.")
        self.backbone = backbone
        self.head = head
        self.loss = loss
        self.in_feature = in_feature
        self.stride = shapes[in_feature].stride
        self.pool = pool
        self.freeze_backbone = freeze_backbone
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if freeze_backbone:
            for parameter in self.backbone.parameters():
                parameter.requires_grad_(False)
            self.backbone.eval()
        self.register_load_state_dict_pre_hook(_convert_foreign_backbone_checkpoint)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.IMAGE_CLASSIFIER
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        if node.IN_FEATURE not in shapes:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.IN_FEATURE {node.IN_FEATURE!r} is not an "
                             f"output of the backbone; its outputs are {sorted(shapes)}.")
        channels = shapes[node.IN_FEATURE].channels
        return {
            "backbone": backbone,
            "head": ClassificationHead(channels, node.NUM_CLASSES, list(node.HIDDEN_DIMS),
                                       node.DROPOUT),
            "loss": ClassificationLoss(node.NUM_CLASSES, node.POS_WEIGHT, list(node.CLASS_WEIGHTS)),
            "in_feature": node.IN_FEATURE,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "pool": node.POOL,
            "freeze_backbone": node.FREEZE_BACKBONE,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @property
    def num_logits(self) -> int:
        return self.loss.num_logits

    def train(self, mode: bool = True) -> "ImageClassifier":
        """Set the training mode; a frozen backbone stays in eval mode (BN statistics fixed)."""
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """Normalise the images and pad them into one batch (``backbone.size_divisibility``)."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std
                  for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def forward_logits(self, batched_inputs: List[Dict]) -> Tensor:
        """[B, num_logits] logits of a batch of mapper outputs."""
        images = self.preprocess_image(batched_inputs)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            features = self.backbone(images.tensor)[self.in_feature]
        pooled = masked_global_pool(features, images.image_sizes, self.stride, self.pool)
        return self.head(pooled)

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: mapper outputs (:class:`vertspine.data.ImageLabelDatasetMapper`):
                ``image`` [C, H, W] in ``INPUT.FORMAT`` on the 0-255 scale; in training
                ``label`` (int: 0/1 for a binary classifier, else 0..C-1).
        Returns:
            Training: ``{"loss_cls": scalar}``. Inference: one dict per image with ``logits``
            [num_logits] and ``probs`` [num_logits] (sigmoid for one logit = p(positive class),
            softmax otherwise).
        """
        if self.training and any("label" not in x for x in batched_inputs):
            raise ValueError("Training inputs need a 'label'; use INPUT.DATASET_MAPPER "
                             "'ImageLabelDatasetMapper' with a classification dataset.")
        logits = self.forward_logits(batched_inputs)
        if self.training:
            labels = torch.as_tensor([int(x["label"]) for x in batched_inputs],
                                     device=self.device)
            return {"loss_cls": self.loss(logits, labels)}
        probs = logits.sigmoid() if self.num_logits == 1 else logits.softmax(-1)
        return [{"logits": lg, "probs": p} for lg, p in zip(logits, probs)]


def _convert_foreign_backbone_checkpoint(module: ImageClassifier, state_dict: Dict[str, Tensor],
                                         prefix: str, *args) -> None:
    """load_state_dict pre-hook: a checkpoint with no ``backbone.`` key is taken to be a bare
    backbone (torchvision layout) and renamed when the backbone can convert it."""
    own = [k for k in state_dict if k.startswith(prefix)]
    if not own or any(k[len(prefix):].startswith(("backbone.", "head.")) for k in own):
        return
    convert = getattr(module.backbone, "convert_torchvision_state_dict", None)
    if convert is None:
        return
    foreign = {k[len(prefix):]: state_dict.pop(k) for k in own
               if k[len(prefix):] not in ("pixel_mean", "pixel_std")}
    converted, report = convert(foreign)
    state_dict.update({f"{prefix}backbone.{k}": v for k, v in converted.items()})
    logger.log(logging.INFO if backbone_loaded_fully(report) else logging.WARNING,
               "Checkpoint without 'backbone.' keys read as a torchvision backbone:\n%s", report)
