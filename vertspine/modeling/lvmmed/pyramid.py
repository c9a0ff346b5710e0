"""ViTDet-style simple feature pyramid over the LVM-Med ViT: ``build_lvmmed_vit_pyramid_backbone``.

Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ECCV 2022): the
single stride-16 map is rescaled per level (two 2x transposed convolutions for 4x, one for 2x,
identity, 2x2 max pooling for 0.5x), then a 1x1 and a 3x3 convolution bring every level to the
same width. With patch 16 and scales (4, 2, 1, 0.5) the levels are p2..p5 (strides 4..32), plus p6
(max pool of p5) for an RPN, so detectron2's FPN-based heads (RPN, ROI heads, Sparse R-CNN,
SemSegFPNHead) use it as they use a ResNet-FPN.
"""
import math
from typing import Dict, List, Sequence

from detectron2.config import CfgNode
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from fvcore.nn import weight_init
from torch import Tensor, nn

from .vit_backbone import build_lvmmed_vit

__all__ = ["SimpleFeaturePyramid", "build_lvmmed_vit_pyramid_backbone"]


def _norm(norm: str, channels: int) -> nn.Module:
    """"LN" = channel LayerNorm (segment_anything's LayerNorm2d); else detectron2's get_norm."""
    if norm == "LN":
        from segment_anything.modeling.common import LayerNorm2d

        return LayerNorm2d(channels)
    return get_norm(norm, channels) or nn.Identity()


class SimpleFeaturePyramid(Backbone):
    """Multi-scale features from one feature map of a plain backbone.

    Outputs ``p<log2(stride)>`` for each scale factor (stride = input stride / factor), all with
    ``out_channels``; with ``top_block``, one more level max-pooled from the last.
    """

    def __init__(self, *, net: Backbone, in_feature: str, scale_factors: Sequence[float],
                 out_channels: int, norm: str = "LN", top_block: bool = True):
        """
        Args:
            net: a backbone whose output ``in_feature`` is [N, C, H/s, W/s].
            in_feature: the feature to rescale.
            scale_factors: per level, from the finest; each of 4, 2, 1 or 0.5.
            out_channels: channels of every level.
            norm: "LN", "GN", "BN", ... or "" (no normalisation, convolutions get a bias).
            top_block: add a max-pooled level after the last one.
        """
        super().__init__()
        bad = [s for s in scale_factors if s not in (4.0, 2.0, 1.0, 0.5)]
        if bad or list(scale_factors) != sorted(scale_factors, reverse=True):
            raise ValueError(f"MODEL.LVMMED.PYRAMID.SCALE_FACTORS {list(scale_factors)} must be "
                             "decreasing values among 4.0, 2.0, 1.0, 0.5.")
        self.net = net
        self.in_feature = in_feature
        dim = net.output_shape()[in_feature].channels
        in_stride = net.output_shape()[in_feature].stride
        self._out_features: List[str] = []
        self._out_feature_strides: Dict[str, int] = {}
        self._out_feature_channels: Dict[str, int] = {}
        self.stages = nn.ModuleList()
        for scale in scale_factors:
            stride = int(in_stride / scale)
            if scale == 4.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), _norm(norm, dim // 2),
                          nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)]
                width = dim // 4
            elif scale == 2.0:
                layers, width = [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)], dim // 2
            elif scale == 1.0:
                layers, width = [], dim
            else:
                layers, width = [nn.MaxPool2d(kernel_size=2, stride=2)], dim
            convs = [Conv2d(width, out_channels, 1, bias=not norm, norm=_norm(norm, out_channels)),
                     Conv2d(out_channels, out_channels, 3, padding=1, bias=not norm,
                            norm=_norm(norm, out_channels))]
            for conv in convs:
                weight_init.c2_msra_fill(conv)
            self.stages.append(nn.Sequential(*layers, *convs))
            name = f"p{int(math.log2(stride))}"
            self._out_features.append(name)
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = out_channels
        self.top_block = None
        if top_block:
            self.top_block = LastLevelMaxPool()
            self.top_block.in_feature = self._out_features[-1]
            name = f"p{int(math.log2(self._out_feature_strides[self._out_features[-1]])) + 1}"
            self._out_features.append(name)
            last_stride = self._out_feature_strides[self.top_block.in_feature]
            self._out_feature_strides[name] = 2 * last_stride
            self._out_feature_channels[name] = out_channels
        self._size_divisibility = max(int(in_stride / s) for s in scale_factors)

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: [N, C, H, W] normalised images, H and W multiples of ``size_divisibility``.
        Returns:
            ``{p_k: [N, out_channels, H / 2**k, W / 2**k]}`` for every level.
        """
        feature = self.net(x)[self.in_feature]
        outputs = {name: stage(feature) for name, stage in zip(self._out_features, self.stages)}
        if self.top_block is not None:
            outputs[self._out_features[-1]] = self.top_block(outputs[self.top_block.in_feature])[0]
        return outputs


@BACKBONE_REGISTRY.register()
def build_lvmmed_vit_pyramid_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """LVM-Med ViT (``MODEL.LVMMED.VIT``, loaded from ``ENCODER_WEIGHTS``) under a simple feature
    pyramid (``MODEL.LVMMED.PYRAMID``); report in ``backbone.net.lvmmed_report``."""
    node = cfg.MODEL.LVMMED.PYRAMID
    return SimpleFeaturePyramid(
        net=build_lvmmed_vit(cfg, input_shape), in_feature=cfg.MODEL.LVMMED.VIT.OUT_FEATURE,
        scale_factors=node.SCALE_FACTORS, out_channels=node.OUT_CHANNELS, norm=node.NORM,
        top_block=node.TOP_BLOCK,
    )
