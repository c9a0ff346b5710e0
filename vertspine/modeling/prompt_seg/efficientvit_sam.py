"""EfficientViT-SAM image encoders (DAFT's encoder): an EfficientViT-L backbone and SAM's neck.

Architecture (mit-han-lab/efficientvit@3ecf6f86, ``efficientvit_backbone_l0`` and
``efficientvit_sam_l0``, the commit DAFT builds on):

- backbone: timm's EfficientViT-L blocks (``timm.models.efficientvit_mit``: ``Stem`` and
  ``EfficientVitLargeStage``, which reproduce the official ones), 5 stages with strides 2, 4, 8,
  16, 32; L0: widths [32, 64, 128, 256, 512], depths [1, 1, 1, 4, 4]; GELU (tanh); BatchNorm
  and LayerNorm eps 1e-6 (the official ``create_sam_model`` sets it); the linear attention's
  eps 1e-15 (the official value; timm's default is 1e-5);
- neck (:class:`SamNeck`): stages 4, 3 and 2 each mapped by a 1x1 conv + BatchNorm to the head
  width, resized (bicubic) to a *fixed* E x E grid whatever the input size, summed, passed
  through ``head_depth`` residual fused-MBConv blocks and a 1x1 conv (with bias) to 256 channels;
- a channel LayerNorm (:class:`LayerNorm2d`).

At S = 256 input, E = 64: a [N, 256, 64, 64] embedding from stages of 32^2, 16^2 and 8^2.
Inputs are min-max scaled to [0, 1] and padded bottom/right (DAFT/LiteMedSAM preprocessing).

State-dict keys are timm's for the backbone (``backbone.stem.in_conv.conv.weight``,
``backbone.stages.3.blocks.1.context_module.main.qkv.conv.weight``) and this module's for the
neck (``neck.lateral.0``, ``neck.blocks.0``, ``neck.proj``); the official ``l0.pt`` / DAFT
layout is converted key for key by :mod:`.efficientvit_weights`.

Registered in :data:`PROMPT_SEG_ENCODER_REGISTRY`: ``efficientvit_sam_l0`` and
``efficientvit_sam_tiny`` (widths [8, 8, 8, 16, 32], one block per stage, a 16-wide neck of
depth 1: the same modules, for tests and instant configs).
"""
from typing import Dict, List, NamedTuple, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder

__all__ = [
    "EFFICIENTVIT_SAM_SPECS", "EfficientViTLargeBackbone", "EfficientViTSamEncoder",
    "EfficientViTSamSpec", "LayerNorm2d", "SamNeck", "build_efficientvit_sam_encoder",
]

NORM_EPS = 1e-6  # every BatchNorm and LayerNorm of the official SAM models
ATTENTION_EPS = 1e-15  # LiteMLA's denominator eps in the official code


class EfficientViTSamSpec(NamedTuple):
    """The sizes of one EfficientViT-SAM image encoder.

    Attributes:
        widths: channels of stages 0-4.
        depths: blocks of stages 0-4 (after each stage's downsampling block).
        head_width: channels of the neck.
        head_depth: residual fused-MBConv blocks of the neck.
        head_dim: channels per head of the linear attention (stage 4).
    """

    widths: Sequence[int]
    depths: Sequence[int]
    head_width: int
    head_depth: int
    head_dim: int = 32


EFFICIENTVIT_SAM_SPECS: Dict[str, EfficientViTSamSpec] = {
    "l0": EfficientViTSamSpec((32, 64, 128, 256, 512), (1, 1, 1, 4, 4), 256, 4),
    "tiny": EfficientViTSamSpec((8, 8, 8, 16, 32), (1, 1, 1, 1, 1), 16, 1),
}


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of [N, C, H, W] (keys ``weight``, ``bias``: [C])."""

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
                            self.bias, self.eps).permute(0, 3, 1, 2)


def _timm_parts():
    """timm's EfficientViT module, imported when a model is built (``import vertspine`` stays
    light)."""
    from timm.models import efficientvit_mit
    return efficientvit_mit


class EfficientViTLargeBackbone(nn.Module):
    """EfficientViT-L backbone: [N, 3, S, S] -> the outputs of stages 0-4, [N, widths[i],
    S / 2^(i+1), S / 2^(i+1)] (timm's stem and stages, without its classifier head)."""

    def __init__(self, widths: Sequence[int], depths: Sequence[int], head_dim: int = 32):
        """
        Args:
            widths, depths: 5 entries each (stage 0 is the stem).
            head_dim: channels per attention head of stage 4 (its width must be a multiple).
        Raises:
            ValueError: widths/depths not of length 5, or widths[4] not a multiple of head_dim.
        """
        super().__init__()
        if len(widths) != 5 or len(depths) != 5:
            raise ValueError(f"EfficientViT-L needs 5 widths and 5 depths, got {list(widths)} "
                             f"and {list(depths)}.")
        if widths[4] % head_dim:
            raise ValueError(f"The last width {widths[4]} must be a multiple of the attention "
                             f"head dimension {head_dim}.")
        evit = _timm_parts()
        norm = _batch_norm
        act = evit.GELUTanh
        self.stem = evit.Stem(3, widths[0], depths[0], norm, act, block_type="large")
        self.stages = nn.Sequential(*(
            evit.EfficientVitLargeStage(widths[i], widths[i + 1], depth=depths[i + 1],
                                        norm_layer=norm, act_layer=act, head_dim=head_dim,
                                        vit_stage=i >= 3, fewer_norm=i >= 2)
            for i in range(4)))
        for module in self.modules():
            if isinstance(module, evit.LiteMLA):
                module.eps = ATTENTION_EPS

    def forward(self, x: Tensor) -> List[Tensor]:
        outputs = [self.stem(x)]
        for stage in self.stages:
            outputs.append(stage(outputs[-1]))
        return outputs


def _batch_norm(num_features: int, **kwargs) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(num_features, eps=NORM_EPS, **kwargs)


class SamNeck(nn.Module):
    """EfficientViT-SAM's neck: backbone stages -> [N, out_dim, E, E] (before the LayerNorm).

    Args:
        in_channels: channels of the stages it reads, deepest first (L0: stages 4, 3, 2:
            [512, 256, 128]).
        head_width: channels of the lateral convs and the residual blocks.
        head_depth: residual fused-MBConv blocks (expand ratio 1, GELU).
        embedding_size: E, the fixed side every stage is resized to (bicubic).
        out_dim: channels of the embedding.
    """

    def __init__(self, in_channels: Sequence[int], head_width: int, head_depth: int,
                 embedding_size: int = 64, out_dim: int = 256):
        super().__init__()
        evit = _timm_parts()
        self.embedding_size = embedding_size
        self.lateral = nn.ModuleList(
            evit.ConvNormAct(c, head_width, 1, norm_layer=_batch_norm, act_layer=None)
            for c in in_channels)
        self.blocks = nn.Sequential(*(
            evit.ResidualBlock(evit.FusedMBConv(head_width, head_width, expand_ratio=1,
                                                norm_layer=_batch_norm,
                                                act_layer=(evit.GELUTanh, None)), nn.Identity())
            for _ in range(head_depth)))
        self.proj = nn.Conv2d(head_width, out_dim, 1)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """
        Args:
            features: the stages named by ``in_channels``, in that order.
        Returns:
            [N, out_dim, E, E].
        """
        size = (self.embedding_size, self.embedding_size)
        x = sum(_resize(lateral(f), size) for lateral, f in zip(self.lateral, features))
        return self.proj(self.blocks(x))


def _resize(x: Tensor, size) -> Tensor:
    """Bicubic resize to ``size`` (no-op when already there), in float32 as the original."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x.float(), size=size, mode="bicubic", align_corners=False).to(x.dtype)


class EfficientViTSamEncoder(nn.Module):
    """EfficientViT-SAM image encoder: [N, 3, S, S] (min-max scaled, padded) -> [N, 256, E, E].

    Every parameter is trainable; BatchNorm statistics update in training mode.
    """

    def __init__(self, spec: EfficientViTSamSpec, embedding_size: int = 64):
        """
        Args:
            spec: the sizes (:data:`EFFICIENTVIT_SAM_SPECS`).
            embedding_size: E, the embedding's fixed side (64 in EfficientViT-SAM).
        """
        super().__init__()
        self.backbone = EfficientViTLargeBackbone(spec.widths, spec.depths, spec.head_dim)
        self.neck = SamNeck(spec.widths[4:1:-1], spec.head_width, spec.head_depth,
                            embedding_size)
        self.norm = LayerNorm2d(256, eps=NORM_EPS)

    def forward(self, images: Tensor) -> Tensor:
        stages = self.backbone(images)
        return self.norm(self.neck(stages[4:1:-1]))


def build_efficientvit_sam_encoder(cfg, variant: str) -> PromptSegEncoder:
    """The encoder ``variant`` ("l0" or "tiny") at ``INPUT.PROMPT_SEG.IMAGE_SIZE``, with the
    weights of ``MODEL.PROMPT_SEG.EFFICIENTVIT.WEIGHTS`` when set (an official ``l0.pt``, a DAFT
    checkpoint, a distiller's or a bare encoder state dict:
    :func:`.efficientvit_weights.load_efficientvit_sam_weights`).

    Raises:
        ValueError: the image size is not a positive multiple of 32 (the backbone's stride).
    """
    from .efficientvit_weights import load_efficientvit_sam_weights

    node = cfg.MODEL.PROMPT_SEG.EFFICIENTVIT
    size = cfg.INPUT.PROMPT_SEG.IMAGE_SIZE
    if size <= 0 or size % 32:
        raise ValueError(f"INPUT.PROMPT_SEG.IMAGE_SIZE={size}: the EfficientViT encoders need a "
                         "positive multiple of 32 (256 for DAFT).")
    encoder = EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS[variant], node.EMBEDDING_SIZE)
    if node.WEIGHTS:
        load_efficientvit_sam_weights(encoder, node.WEIGHTS, strict=node.STRICT)
    return PromptSegEncoder(encoder, size, node.EMBEDDING_SIZE, "minmax")


@PROMPT_SEG_ENCODER_REGISTRY.register()
def efficientvit_sam_l0(cfg) -> PromptSegEncoder:
    """EfficientViT-SAM-L0 (DAFT's encoder): 256 px -> [N, 256, 64, 64]."""
    return build_efficientvit_sam_encoder(cfg, "l0")


@PROMPT_SEG_ENCODER_REGISTRY.register()
def efficientvit_sam_tiny(cfg) -> PromptSegEncoder:
    """The tiny EfficientViT-SAM of tests and instant configs (same modules, few channels)."""
    return build_efficientvit_sam_encoder(cfg, "tiny")
