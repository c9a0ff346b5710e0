"""LVM-Med (Nguyen et al., NeurIPS 2023) self-supervised medical encoders as a vertspine family.

Importing this package registers detectron2 backbones that load LVM-Med checkpoints at build
time (``MODEL.LVMMED.ENCODER_WEIGHTS``, key layout ``MODEL.LVMMED.WEIGHTS_LAYOUT``):

- ``build_lvmmed_resnet_backbone`` / ``build_lvmmed_resnet_fpn_backbone``: detectron2 ResNet(-FPN)
  from the torchvision-layout ResNet-50 (``lvmmed_resnet.torch``, or torchvision ImageNet files);
- ``build_lvmmed_vit_backbone`` / ``build_lvmmed_vit_pyramid_backbone``: segment_anything's
  ``ImageEncoderViT`` (built by :mod:`vertspine.layers.sam`) from the SAM-encoder-layout ViT-B
  (``lvmmed_vit.pth``, or a full SAM checkpoint), single-scale or under a ViTDet simple feature
  pyramid (p2..p6).

Configure with :func:`add_lvmmed_config` (``MODEL.LVMMED``). LVM-Med's U-Net is the segmentation
family's ``Segmentor`` with the ``smp_unet`` network (``configs/lvmmed/*unet*``).
"""
from .checkpoint import EncoderCheckpointReport, load_encoder_checkpoint, torchvision_to_d2
from .config import WEIGHTS_LAYOUTS, add_lvmmed_config
from .pyramid import SimpleFeaturePyramid, build_lvmmed_vit_pyramid_backbone
from .resnet_backbone import (
    build_lvmmed_resnet_backbone,
    build_lvmmed_resnet_fpn_backbone,
    load_lvmmed_resnet,
)
from .vit_backbone import LVMMedViT, build_lvmmed_vit_backbone, load_lvmmed_vit

__all__ = [
    "WEIGHTS_LAYOUTS",
    "EncoderCheckpointReport",
    "LVMMedViT",
    "SimpleFeaturePyramid",
    "add_lvmmed_config",
    "build_lvmmed_resnet_backbone",
    "build_lvmmed_resnet_fpn_backbone",
    "build_lvmmed_vit_backbone",
    "build_lvmmed_vit_pyramid_backbone",
    "load_encoder_checkpoint",
    "load_lvmmed_resnet",
    "load_lvmmed_vit",
    "torchvision_to_d2",
]
