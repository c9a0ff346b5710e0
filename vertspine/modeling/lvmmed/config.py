"""The ``MODEL.LVMMED`` keys: LVM-Med encoders as detectron2 backbones.

LVM-Med (Nguyen et al., NeurIPS 2023) ships a ResNet-50 in torchvision's key layout and a ViT-B
in the layout of SAM's image encoder without ``pos_embed``. The backbones registered by this
family build the detectron2 module and load such a file at build time from ``ENCODER_WEIGHTS``,
so ``MODEL.WEIGHTS`` stays free for full detectron2 checkpoints (loaded afterwards, on top).
The ResNet backbones read the usual ``MODEL.RESNETS`` / ``MODEL.BACKBONE.FREEZE_AT`` /
``MODEL.FPN`` keys; the LVM-Med recipe is ``STRIDE_IN_1X1 False``, ``NORM "FrozenBN"``,
``FREEZE_AT 2``. LVM-Med's U-Net is configured under ``MODEL.SEGMENTOR`` (segmentation family).
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_lvmmed_config", "WEIGHTS_LAYOUTS"]

# Key layouts an encoder checkpoint may have (see vertspine.modeling.lvmmed.checkpoint).
WEIGHTS_LAYOUTS = ("torchvision_resnet50", "sam_vit_b", "detectron2")


@register_config
def add_lvmmed_config(cfg: CN) -> CN:
    """Add ``MODEL.LVMMED`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.MODEL.LVMMED = node = CN()
    # Encoder checkpoint loaded when the backbone is built ("" = keep the random initialisation).
    node.ENCODER_WEIGHTS = ""
    # Key layout of ENCODER_WEIGHTS: "torchvision_resnet50" (LVM-Med / torchvision ImageNet
    # ResNet), "sam_vit_b" (LVM-Med ViT-B, or a full SAM checkpoint whose image_encoder.* is
    # taken) or "detectron2" (this backbone's own state dict, optionally prefixed "backbone.").
    node.WEIGHTS_LAYOUT = "torchvision_resnet50"
    # Raise, naming the keys, when a checkpoint key is missing, unexpected or of another shape.
    node.STRICT = True

    # ViT-B encoder: segment_anything's ImageEncoderViT (keys match the SAM layout 1:1).
    node.VIT = CN()
    # Image side the encoder is built for: sets the global-attention relative-position tables
    # (2 * IMG_SIZE / PATCH_SIZE - 1 rows) and pos_embed; 1024 for LVM-Med and SAM. Inputs of
    # other sizes work (tables interpolated); they are padded to a multiple of PATCH_SIZE.
    node.VIT.IMG_SIZE = 1024
    # Patch side in pixels (the output stride of the single-scale feature).
    node.VIT.PATCH_SIZE = 16
    # Token width, number of blocks, attention heads and MLP ratio (ViT-B: 768, 12, 12, 4).
    node.VIT.EMBED_DIM = 768
    node.VIT.DEPTH = 12
    node.VIT.NUM_HEADS = 12
    node.VIT.MLP_RATIO = 4.0
    # Window attention side in tokens (0 = global everywhere), and the global-attention blocks.
    node.VIT.WINDOW_SIZE = 14
    node.VIT.GLOBAL_ATTN_INDEXES = [2, 5, 8, 11]
    # Absolute position embedding (False for LVM-Med; True to load SAM's own encoder).
    node.VIT.USE_ABS_POS = False
    # Decomposed relative position embeddings in attention (True for both LVM-Med and SAM).
    node.VIT.USE_REL_POS = True
    # Apply SAM's neck (1x1 conv, LN, 3x3 conv, LN: EMBED_DIM -> NECK_CHANNELS); without it the
    # output is the last block's EMBED_DIM tokens and neck.* checkpoint keys are dropped.
    node.VIT.USE_NECK = True
    node.VIT.NECK_CHANNELS = 256
    # Name of the single-scale (stride PATCH_SIZE) output feature.
    node.VIT.OUT_FEATURE = "last_feat"

    # ViTDet-style simple feature pyramid over the ViT's single-scale output.
    node.PYRAMID = CN()
    # Rescaling of the stride-PATCH_SIZE map per level (4 = two 2x deconvolutions, 0.5 = max
    # pool); outputs are named p<log2 stride>, e.g. p2..p5 for patch 16.
    node.PYRAMID.SCALE_FACTORS = [4.0, 2.0, 1.0, 0.5]
    # Channels of every pyramid level.
    node.PYRAMID.OUT_CHANNELS = 256
    # Normalisation in the pyramid convolutions ("LN" channel LayerNorm as ViTDet, "GN", "").
    node.PYRAMID.NORM = "LN"
    # Add a stride-2x max-pooled extra level after the last one (p6 for RPN), as detectron2's FPN.
    node.PYRAMID.TOP_BLOCK = True

    return cfg
