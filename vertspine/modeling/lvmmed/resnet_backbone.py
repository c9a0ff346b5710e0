"""LVM-Med ResNet-50 as detectron2 backbones: ``build_lvmmed_resnet_backbone`` (res2..res5) and
``build_lvmmed_resnet_fpn_backbone`` (p2..p6).

detectron2's own ResNet (``MODEL.RESNETS``, ``MODEL.BACKBONE.FREEZE_AT``, ``MODEL.FPN``) is built
and then filled from ``MODEL.LVMMED.ENCODER_WEIGHTS``, a torchvision-layout file (the LVM-Med
ResNet-50, or torchvision's ImageNet ResNet-50 for comparison) renamed to detectron2's names.
torchvision's bottleneck strides in its 3x3 convolution, so ``MODEL.RESNETS.STRIDE_IN_1X1`` must
be False for that layout. Freezing happens at construction (frozen stages use FrozenBN), loading
after, so frozen stages hold the checkpoint's values.
"""
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import ResNet, build_resnet_backbone

from .checkpoint import EncoderCheckpointReport, load_encoder_checkpoint

__all__ = ["build_lvmmed_resnet_backbone", "build_lvmmed_resnet_fpn_backbone", "load_lvmmed_resnet"]

_RESNET_LAYOUTS = ("torchvision_resnet50", "detectron2")


def _check_resnet_config(cfg: CfgNode) -> None:
    layout = cfg.MODEL.LVMMED.WEIGHTS_LAYOUT
    if not cfg.MODEL.LVMMED.ENCODER_WEIGHTS:
        return
    if layout not in _RESNET_LAYOUTS:
        raise ValueError(
            f"MODEL.LVMMED.WEIGHTS_LAYOUT '{layout}' cannot fill a ResNet backbone; use one of "
            f"{_RESNET_LAYOUTS} (\"sam_vit_b\" is for build_lvmmed_vit_*_backbone).")
    if layout == "torchvision_resnet50" and cfg.MODEL.RESNETS.STRIDE_IN_1X1:
        raise ValueError(
            "MODEL.RESNETS.STRIDE_IN_1X1 is True, but torchvision-layout ResNets stride in the 3x3 "
            "convolution: set MODEL.RESNETS.STRIDE_IN_1X1 False.")


def load_lvmmed_resnet(resnet: ResNet, cfg: CfgNode) -> EncoderCheckpointReport:
    """Fill a detectron2 ``ResNet`` from ``MODEL.LVMMED.ENCODER_WEIGHTS`` (no-op report when "")."""
    node = cfg.MODEL.LVMMED
    if not node.ENCODER_WEIGHTS:
        return EncoderCheckpointReport(source="(random init)", layout="none")
    return load_encoder_checkpoint(resnet, node.ENCODER_WEIGHTS, node.WEIGHTS_LAYOUT,
                                   strict=node.STRICT)


@BACKBONE_REGISTRY.register()
def build_lvmmed_resnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """detectron2 ``ResNet`` (outputs ``MODEL.RESNETS.OUT_FEATURES``, e.g. res5 [N, 2048, H/32,
    W/32]) initialised from the LVM-Med checkpoint; the load report is kept as
    ``backbone.lvmmed_report``."""
    _check_resnet_config(cfg)
    resnet = build_resnet_backbone(cfg, input_shape)
    resnet.lvmmed_report = load_lvmmed_resnet(resnet, cfg)
    return resnet


@BACKBONE_REGISTRY.register()
def build_lvmmed_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """detectron2's ResNet-FPN (``MODEL.FPN``, p2..p6 with LastLevelMaxPool) whose bottom-up
    ResNet is initialised from the LVM-Med checkpoint (report in ``bottom_up.lvmmed_report``)."""
    bottom_up = build_lvmmed_resnet_backbone(cfg, input_shape)
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
