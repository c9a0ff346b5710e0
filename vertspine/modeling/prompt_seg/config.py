"""The ``MODEL.PROMPT_SEG`` keys: the box-prompted segmenter, its image encoders and its loss.

The model's input side S is ``INPUT.PROMPT_SEG.IMAGE_SIZE`` (one key, read by the data mapper and
by the encoders; :mod:`vertspine.data.prompt_seg.config` owns it, and it is added here only when
absent so that the model builds without the data package). The defaults describe LiteMedSAM:
TinyViT at 256 px, SAM's prompt encoder and mask decoder, Dice + BCE + IoU-MSE with weights 1.
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_prompt_seg_config"]


@register_config
def add_prompt_seg_config(cfg: CN) -> CN:
    """Add ``MODEL.PROMPT_SEG`` (and ``INPUT.PROMPT_SEG.IMAGE_SIZE`` if absent) to ``cfg``.

    Sub-nodes other families' helpers add (``EFFICIENTVIT``, ``DISTILL``) are kept when the node
    already exists.

    Args:
        cfg: a detectron2 config, changed in place.
    Returns:
        The same config, for chaining.
    """
    if "PROMPT_SEG" not in cfg.INPUT:
        cfg.INPUT.PROMPT_SEG = CN()
    if "IMAGE_SIZE" not in cfg.INPUT.PROMPT_SEG:
        # Model input side S in px (256 LiteMedSAM/DAFT, 1024 MedSAM).
        cfg.INPUT.PROMPT_SEG.IMAGE_SIZE = 256
    if "PROMPT_SEG" not in cfg.MODEL:
        cfg.MODEL.PROMPT_SEG = CN()
    node = cfg.MODEL.PROMPT_SEG
    # Image encoder, by its name in PROMPT_SEG_ENCODER_REGISTRY ("tiny_vit", "sam_vit_b", ...).
    node.ENCODER = "tiny_vit"
    # Keep SAM's prompt encoder fixed (no gradients), as DAFT's fine-tuning.
    node.FREEZE_PROMPT_ENCODER = False
    # Training loss = DICE_WEIGHT * soft Dice (squared denominators) + BCE_WEIGHT * BCE
    # + IOU_WEIGHT * MSE(predicted IoU, IoU of the thresholded mask with the GT).
    node.DICE_WEIGHT = 1.0
    node.BCE_WEIGHT = 1.0
    node.IOU_WEIGHT = 1.0
    # Boxes decoded together at inference: bounds the memory of images with many boxes (each
    # box holds its own copy of the [256, E, E] embedding and a [32, 4E, 4E] upscaled map).
    node.BOX_CHUNK = 16
    # Where the masks of several boxes overlap (2D and 3D inference): "iou", the higher
    # predicted IoU wins; "smaller", the mask with fewer pixels (a nested structure keeps its own);
    # "intensity", pixel by pixel the box whose reference intensity (median over its mask; in 3D
    # on its middle slice) is nearest the pixel's smoothed value (structures of distinct values).
    node.OVERLAP = "iou"
    # Boxes may come with a mask prompt (SAM's dense prompt through the prompt encoder's mask
    # downscaling, trained then): 3D propagation gives each slice the previous slice's mask
    # (PROPAGATION.MASK_PROMPT), training draws them from adjacent slices
    # (INPUT.PROMPT_SEG.MASK_PROMPT_PROB). Off: boxes only, the originals' model and graphs.
    node.MASK_PROMPT = False
    # 3D inference (tools/predict_prompt_seg.py; vertspine/modeling/prompt_seg/propagation.py):
    # each slice is prompted with the previous slice's mask box grown by EXPAND px of a 256-px
    # frame (LiteMedSAM's shift: EXPAND / 256 of the slice's longest side, whatever the model's
    # input size); a mask whose predicted IoU is below MIN_IOU counts as collapsed; then
    # ON_COLLAPSE "stop" ends that direction, "box" retries once with the given rectangle;
    # WITHIN_PROMPT cuts each mask to its prompt box (False: the originals' whole masks).
    node.PROPAGATION = CN()
    node.PROPAGATION.EXPAND = 3.0
    node.PROPAGATION.MIN_IOU = 0.0
    node.PROPAGATION.ON_COLLAPSE = "stop"
    node.PROPAGATION.WITHIN_PROMPT = True
    # Also prompt each propagated slice with the previous slice's mask (needs a model built
    # and trained with MASK_PROMPT).
    node.PROPAGATION.MASK_PROMPT = False

    # SAM ViT image encoder (MedSAM: ViT-B at S = 1024, 64 x 64 embedding); the defaults are
    # ViT-B's, smaller values give the tiny encoders of the tests.
    node.SAM_VIT_B = CN()
    # Token width, blocks, attention heads.
    node.SAM_VIT_B.EMBED_DIM = 768
    node.SAM_VIT_B.DEPTH = 12
    node.SAM_VIT_B.NUM_HEADS = 12
    # Blocks with global attention; the others attend in WINDOW_SIZE x WINDOW_SIZE windows.
    node.SAM_VIT_B.GLOBAL_ATTN_INDEXES = [2, 5, 8, 11]
    # Window side in tokens (0: every block global).
    node.SAM_VIT_B.WINDOW_SIZE = 14
    # Patch side in px; the embedding side is S / PATCH_SIZE (64 must come out for MedSAM).
    node.SAM_VIT_B.PATCH_SIZE = 16
    # Decomposed relative positions in the attention.
    node.SAM_VIT_B.USE_REL_POS = True

    # LiteMedSAM's TinyViT (MobileSAM-style, 1x1 stride-1 patch embedding; every stage but
    # the last halves the grid, so S = 256 gives 256 -> 128 -> 64 -> 64 and a 64 x 64 embedding).
    node.TINY_VIT = CN()
    # Width of each stage (stage 0: MBConv blocks, the others: windowed attention blocks).
    node.TINY_VIT.EMBED_DIMS = [64, 128, 160, 320]
    # Blocks per stage.
    node.TINY_VIT.DEPTHS = [2, 2, 6, 2]
    # Attention heads per stage (stage 0's is unused).
    node.TINY_VIT.NUM_HEADS = [2, 4, 5, 10]
    # Attention window side per stage, in tokens (stage 0's is unused).
    node.TINY_VIT.WINDOW_SIZES = [7, 7, 14, 7]
    # MLP width / stage width in the attention blocks.
    node.TINY_VIT.MLP_RATIO = 4.0
    # Hidden width / width in the MBConv blocks of stage 0.
    node.TINY_VIT.MBCONV_EXPAND_RATIO = 4.0
    # Depthwise convolution kernel between attention and MLP.
    node.TINY_VIT.LOCAL_CONV_SIZE = 3
    # Stochastic depth, rising linearly over the blocks to this rate (LiteMedSAM: 0).
    node.TINY_VIT.DROP_PATH_RATE = 0.0
    # Recompute each block in the backward pass instead of storing its activations (training
    # memory; the original's use_checkpoint, off in LiteMedSAM).
    node.TINY_VIT.GRAD_CHECKPOINT = False
    return cfg
