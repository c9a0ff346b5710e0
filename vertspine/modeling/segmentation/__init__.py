"""Semantic segmentation of 2D images and 3D volumes as a vertspine model family.

Importing this package registers the ``Segmentor`` meta-architecture (``spatial_dims`` 2 or 3),
its networks in ``SEG_NETWORK_REGISTRY`` (``smp_unet``: segmentation_models_pytorch U-Net, 2D,
encoder from a torchvision-layout file such as LVM-Med's ResNet-50; ``dynunet``: MONAI DynUNet,
2D or 3D) and the ``MODEL.SEGMENTOR.NUM_CLASSES`` class-count key. Configure with
:func:`add_segmentation_config` (``MODEL.SEGMENTOR``). Loss: :func:`dice_ce_loss` (CE + soft
Dice, MONAI DiceCELoss semantics, ignore label; optional soft clDice, :func:`soft_cldice_loss`).
Evaluation: the "sem_seg_dice" evaluator (:mod:`vertspine.evaluation.sem_seg_dice`).
"""
from .config import add_segmentation_config
from .dynunet import dynunet
from .loss import dice_ce_loss, soft_cldice_loss, soft_skeleton
from .registry import (
    SEG_NETWORK_REGISTRY,
    SegmentationNetwork,
    build_segmentation_network,
    output_channels,
)
from .segmentor import Segmentor, pad_batch
from .smp_unet import load_encoder_weights, smp_unet

__all__ = [
    "SEG_NETWORK_REGISTRY",
    "SegmentationNetwork",
    "Segmentor",
    "add_segmentation_config",
    "build_segmentation_network",
    "dice_ce_loss",
    "dynunet",
    "load_encoder_weights",
    "output_channels",
    "pad_batch",
    "smp_unet",
    "soft_cldice_loss",
    "soft_skeleton",
]
