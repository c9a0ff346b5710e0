"""U-Net semantic segmentation with an LVM-Med ResNet-50 encoder: ``UNetSegmentor``.

The network is segmentation-models-pytorch's ``Unet(encoder_name, encoder_weights=None)``,
unpatched: its ResNet encoder is a torchvision ``ResNet`` without ``fc``/``avgpool``, so the
LVM-Med file (torchvision layout) loads into ``unet.encoder`` under its own names, ``fc.*``
dropped, strictly by default (``MODEL.LVMMED.ENCODER_WEIGHTS`` / ``STRICT``). LVM-Med instead
patches smp's source to register its weights; here no library file changes.

Input: detectron2 dataset dicts with ``image`` [3, H, W] (0-255, ``INPUT.FORMAT`` order) and,
in training, ``sem_seg`` [H, W] int64 labels (0 background, 1..K, ``IGNORE_VALUE`` ignored).
Images are normalised with ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` and padded (bottom/right) to a
multiple of 32, which smp's U-Net requires; targets are padded with ``IGNORE_VALUE``.
"""
from typing import Dict, List, Sequence

import segmentation_models_pytorch as smp
import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList
from torch import nn

from .checkpoint import EncoderCheckpointReport, load_encoder_checkpoint
from .loss import dice_ce_loss

__all__ = ["UNetSegmentor", "build_smp_unet"]

_SIZE_DIVISIBILITY = 32  # smp's U-Net: input sides must be multiples of the output stride


def build_smp_unet(cfg) -> nn.Module:
    """smp ``Unet`` from ``MODEL.LVMMED.UNET``, its encoder filled from ``ENCODER_WEIGHTS``.

    The load report is kept as ``unet.lvmmed_report``.
    """
    node, lvm = cfg.MODEL.LVMMED.UNET, cfg.MODEL.LVMMED
    if cfg.INPUT.FORMAT not in ("RGB", "BGR"):
        raise ValueError(f"UNetSegmentor takes 3-channel images; INPUT.FORMAT is "
                         f"'{cfg.INPUT.FORMAT}': set it to \"RGB\".")
    if node.NUM_CLASSES < 1:
        raise ValueError(f"MODEL.LVMMED.UNET.NUM_CLASSES must be >= 1, got {node.NUM_CLASSES}.")
    unet = smp.Unet(node.ENCODER_NAME, encoder_weights=None, in_channels=3,
                    classes=node.NUM_CLASSES + 1, decoder_channels=list(node.DECODER_CHANNELS))
    unet.lvmmed_report = EncoderCheckpointReport(source="(random init)", layout="none")
    if lvm.ENCODER_WEIGHTS:
        if lvm.WEIGHTS_LAYOUT == "sam_vit_b":
            raise ValueError("MODEL.LVMMED.WEIGHTS_LAYOUT 'sam_vit_b' cannot fill the U-Net's "
                             "ResNet encoder: use \"torchvision_resnet50\".")
        unet.lvmmed_report = load_encoder_checkpoint(
            unet.encoder, lvm.ENCODER_WEIGHTS, lvm.WEIGHTS_LAYOUT, target="torchvision",
            strict=lvm.STRICT)
    return unet


@META_ARCH_REGISTRY.register()
class UNetSegmentor(nn.Module):
    """smp U-Net trained with cross-entropy + soft Dice; outputs detectron2's ``sem_seg``."""

    @configurable
    def __init__(self, *, unet: nn.Module, num_classes: int, pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], ignore_value: int = 255, ce_weight: float = 1.0,
                 dice_weight: float = 1.0, dice_include_background: bool = True,
                 freeze_encoder: bool = False):
        """
        Args:
            unet: an smp segmentation model with an ``encoder``, predicting K + 1 channels.
            num_classes: K foreground classes.
            pixel_mean, pixel_std: per-channel normalisation in the input's channel order (0-255).
            ignore_value: label left out of the loss; also the target padding.
            ce_weight, dice_weight, dice_include_background: see :func:`dice_ce_loss`.
            freeze_encoder: no gradients to the encoder and its BatchNorm kept in eval mode.
        """
        super().__init__()
        self.unet = unet
        self.num_classes = num_classes
        self.ignore_value = ignore_value
        self.loss_args = {"ignore_value": ignore_value, "ce_weight": ce_weight,
                          "dice_weight": dice_weight, "include_background": dice_include_background}
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.unet.encoder.requires_grad_(False)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.LVMMED.UNET
        return {
            "unet": build_smp_unet(cfg),
            "num_classes": node.NUM_CLASSES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "ignore_value": node.IGNORE_VALUE,
            "ce_weight": node.CE_WEIGHT,
            "dice_weight": node.DICE_WEIGHT,
            "dice_include_background": node.DICE_INCLUDE_BACKGROUND,
            "freeze_encoder": node.FREEZE_ENCODER,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but a frozen encoder stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        if self.freeze_encoder:
            self.unet.encoder.eval()
        return self

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: dataset-mapper outputs: ``image`` [3, H, W]; in training ``sem_seg``
                [H, W] int64; optionally ``height``/``width``, the output resolution.
        Returns:
            Training: ``{"loss_ce", "loss_dice"}``. Inference: one dict per image with
            ``sem_seg`` [K + 1, height, width] class probabilities (softmax of the logits
            bilinearly resized from the unpadded input to (height, width)).
        """
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std
                  for x in batched_inputs]
        images = ImageList.from_tensors(images, _SIZE_DIVISIBILITY)
        logits = self.unet(images.tensor)  # [N, K + 1, Hp, Wp]
        if self.training:
            targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
            targets = ImageList.from_tensors(targets, _SIZE_DIVISIBILITY,
                                             pad_value=self.ignore_value).tensor
            return dice_ce_loss(logits, targets.long(), **self.loss_args)
        results = []
        for logit, x, size in zip(logits, batched_inputs, images.image_sizes):
            height, width = x.get("height", size[0]), x.get("width", size[1])
            results.append({"sem_seg": sem_seg_postprocess(logit, size, height, width).softmax(0)})
        return results
