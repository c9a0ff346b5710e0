"""LVM-Med ViT-B (SAM image-encoder layout) as a single-scale detectron2 backbone.

The module is segment_anything's :class:`ImageEncoderViT`, so the LVM-Med file
(``lvmmed_vit.pth``: ``patch_embed.proj``, ``blocks.0-11.*``, ``neck.0-3``, no ``pos_embed``) and
SAM's own encoder (with ``pos_embed``, ``USE_ABS_POS True``) load key for key. LVM-Med builds it
without absolute positions, with decomposed relative positions, 14x14 windows and global
attention in blocks 2, 5, 8 and 11 (``segment_anything/our_vit.py::vit_encoder_b`` upstream),
which are this family's defaults.

The encoder is built by :func:`vertspine.layers.sam.build_sam_image_encoder` and run by
:func:`vertspine.layers.sam.encode_image`, shared with every SAM user. Input sizes: the encoder
is built for ``IMG_SIZE`` (the relative-position tables of the global blocks have
``2 * IMG_SIZE / PATCH_SIZE - 1`` rows, pos_embed ``IMG_SIZE / PATCH_SIZE`` squared).
segment_anything itself pads token grids to the window size and interpolates the relative-position
tables for other grids; ``encode_image`` pads the image to a multiple of ``PATCH_SIZE``
(bottom/right, zeros) and interpolates ``pos_embed`` (bicubic, as ViTDet) when the grid differs
from the pretraining one. So any image size works; outputs are [N, C, ceil(H/P), ceil(W/P)].
"""
from typing import Dict

from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

from vertspine.layers.sam import SamSize, build_sam_image_encoder, encode_image

from .checkpoint import EncoderCheckpointReport, load_encoder_checkpoint

__all__ = ["LVMMedViT", "build_lvmmed_vit_backbone", "load_lvmmed_vit"]

_VIT_LAYOUTS = ("sam_vit_b", "detectron2")
_KEY = "MODEL.LVMMED.VIT."
# What the errors call the encoder's sizes: their config keys.
_VIT_KEYS = {"image_size": _KEY + "IMG_SIZE", "patch_size": _KEY + "PATCH_SIZE",
             "encoder_dim": _KEY + "EMBED_DIM", "encoder_heads": _KEY + "NUM_HEADS",
             "encoder_depth": _KEY + "DEPTH", "global_attn_indexes": _KEY + "GLOBAL_ATTN_INDEXES"}


class LVMMedViT(Backbone):
    """SAM / LVM-Med ViT image encoder giving one stride-``patch_size`` feature map.

    Parameters live in ``self.encoder`` (an ``ImageEncoderViT``), named as in the SAM layout.
    Without the neck, ``encoder.neck`` is an ``nn.Identity`` and the output is the last
    block's tokens.
    """

    def __init__(self, *, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, window_size: int = 14,
                 global_attn_indexes=(2, 5, 8, 11), use_abs_pos: bool = False,
                 use_rel_pos: bool = True, use_neck: bool = True, neck_channels: int = 256,
                 out_feature: str = "last_feat"):
        """
        Args:
            img_size: pretraining image side (sets the rel-pos table and pos_embed sizes).
            patch_size: patch side, also the output stride.
            in_chans: input channels.
            embed_dim, depth, num_heads, mlp_ratio: transformer sizes (ViT-B: 768, 12, 12, 4).
            window_size: window attention side in tokens (0 = global attention everywhere).
            global_attn_indexes: blocks with global attention.
            use_abs_pos: learned absolute position embedding (SAM: True, LVM-Med: False).
            use_rel_pos: decomposed relative positions in attention (both: True).
            use_neck: apply SAM's neck (embed_dim -> neck_channels).
            neck_channels: the neck's output channels.
            out_feature: name of the output feature.
        """
        super().__init__()
        size = SamSize(
            encoder_dim=embed_dim, encoder_depth=depth, encoder_heads=num_heads,
            global_attn_indexes=tuple(global_attn_indexes), window_size=window_size,
            use_rel_pos=use_rel_pos, use_abs_pos=use_abs_pos, patch_size=patch_size,
            mlp_ratio=mlp_ratio, prompt_dim=neck_channels)
        self.encoder = build_sam_image_encoder(size, img_size, in_chans, names=_VIT_KEYS)
        if not use_neck:
            self.encoder.neck = nn.Identity()
        self.patch_size = patch_size
        self.out_feature = out_feature
        self._out_features = [out_feature]
        self._out_feature_channels = {out_feature: neck_channels if use_neck else embed_dim}
        self._out_feature_strides = {out_feature: patch_size}

    @property
    def size_divisibility(self) -> int:
        return self.patch_size

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: [N, C, H, W] normalised images (any H, W; padded here to multiples of the patch).
        Returns:
            ``{out_feature: [N, C_out, ceil(H/P), ceil(W/P)]}``; C_out is NECK_CHANNELS with the
            neck, EMBED_DIM without. Equal to ``ImageEncoderViT.forward`` when H = W = IMG_SIZE.
        """
        return {self.out_feature: encode_image(self.encoder, x)}


def load_lvmmed_vit(vit: LVMMedViT, cfg: CfgNode) -> EncoderCheckpointReport:
    """Fill ``vit`` from ``MODEL.LVMMED.ENCODER_WEIGHTS`` (no-op report when it is "")."""
    node = cfg.MODEL.LVMMED
    if not node.ENCODER_WEIGHTS:
        return EncoderCheckpointReport(source="(random init)", layout="none")
    if node.WEIGHTS_LAYOUT not in _VIT_LAYOUTS:
        raise ValueError(
            f"MODEL.LVMMED.WEIGHTS_LAYOUT '{node.WEIGHTS_LAYOUT}' cannot fill the ViT backbone; "
            "use "
            f"one of {_VIT_LAYOUTS} (\"torchvision_resnet50\" is for build_lvmmed_resnet_*).")
    if node.WEIGHTS_LAYOUT == "detectron2":
        return load_encoder_checkpoint(vit, node.ENCODER_WEIGHTS, "detectron2",
                                       strict=node.STRICT)
    return load_encoder_checkpoint(vit.encoder, node.ENCODER_WEIGHTS, "sam_vit_b",
                                   strict=node.STRICT)


def build_lvmmed_vit(cfg: CfgNode, input_shape: ShapeSpec) -> LVMMedViT:
    """An :class:`LVMMedViT` from ``MODEL.LVMMED.VIT``, filled from ``ENCODER_WEIGHTS``."""
    node = cfg.MODEL.LVMMED.VIT
    vit = LVMMedViT(
        img_size=node.IMG_SIZE, patch_size=node.PATCH_SIZE, in_chans=input_shape.channels,
        embed_dim=node.EMBED_DIM, depth=node.DEPTH, num_heads=node.NUM_HEADS,
        mlp_ratio=node.MLP_RATIO, window_size=node.WINDOW_SIZE,
        global_attn_indexes=node.GLOBAL_ATTN_INDEXES, use_abs_pos=node.USE_ABS_POS,
        use_rel_pos=node.USE_REL_POS, use_neck=node.USE_NECK, neck_channels=node.NECK_CHANNELS,
        out_feature=node.OUT_FEATURE,
    )
    vit.lvmmed_report = load_lvmmed_vit(vit, cfg)
    return vit


@BACKBONE_REGISTRY.register()
def build_lvmmed_vit_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> Backbone:
    """Single-scale LVM-Med ViT backbone: ``{MODEL.LVMMED.VIT.OUT_FEATURE: [N, C, H/P, W/P]}``;
    the load report is kept as ``backbone.lvmmed_report``."""
    return build_lvmmed_vit(cfg, input_shape)
