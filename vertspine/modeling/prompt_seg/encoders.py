"""The image encoders ``tiny_vit`` (LiteMedSAM) and ``sam_vit_b`` (MedSAM), registered in
:data:`PROMPT_SEG_ENCODER_REGISTRY`.

Both take S x S images min-max scaled to [0, 1] and padded bottom/right (S =
``INPUT.PROMPT_SEG.IMAGE_SIZE``): LiteMedSAM's ``CVPR24_LiteMedSAM_infer.py`` and MedSAM's
``MedSAM_Inference.py`` both feed ``(x - min) / (max - min)`` to the encoder, not SAM's
mean/std normalisation. Sizes are checked before building; errors name the config key.
"""
from typing import Sequence

from vertspine.layers.sam import SamSize, build_sam_image_encoder

from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder
from .tiny_vit import TinyViT, tiny_vit_embedding_size

__all__ = ["sam_vit_b", "tiny_vit"]  # registered under their own names

_SIZE_KEY = "INPUT.PROMPT_SEG.IMAGE_SIZE"
_SAM = "MODEL.PROMPT_SEG.SAM_VIT_B."
_TINY = "MODEL.PROMPT_SEG.TINY_VIT."
# Embedding width every encoder must give SAM's prompt encoder and mask decoder.
EMBED_CHANNELS = 256


@PROMPT_SEG_ENCODER_REGISTRY.register()
def sam_vit_b(cfg) -> PromptSegEncoder:
    """segment_anything's ``ImageEncoderViT`` (ViT-B by default: MedSAM at S = 1024, 64 x 64
    embedding), its sizes from ``MODEL.PROMPT_SEG.SAM_VIT_B``; the neck gives 256 channels."""
    node, image_size = cfg.MODEL.PROMPT_SEG.SAM_VIT_B, cfg.INPUT.PROMPT_SEG.IMAGE_SIZE
    size = SamSize(encoder_dim=node.EMBED_DIM, encoder_depth=node.DEPTH,
                   encoder_heads=node.NUM_HEADS,
                   global_attn_indexes=tuple(node.GLOBAL_ATTN_INDEXES),
                   window_size=node.WINDOW_SIZE, use_rel_pos=node.USE_REL_POS,
                   patch_size=node.PATCH_SIZE, prompt_dim=EMBED_CHANNELS)
    names = {"image_size": _SIZE_KEY, "patch_size": _SAM + "PATCH_SIZE",
             "encoder_dim": _SAM + "EMBED_DIM", "encoder_heads": _SAM + "NUM_HEADS",
             "encoder_depth": _SAM + "DEPTH", "global_attn_indexes": _SAM + "GLOBAL_ATTN_INDEXES"}
    module = build_sam_image_encoder(size, image_size, names=names)
    return PromptSegEncoder(module, image_size, image_size // node.PATCH_SIZE, "minmax")


def _check_tiny_vit(image_size: int, dims: Sequence[int], depths: Sequence[int],
                    heads: Sequence[int], windows: Sequence[int]) -> None:
    lengths = {"EMBED_DIMS": len(dims), "DEPTHS": len(depths), "NUM_HEADS": len(heads),
               "WINDOW_SIZES": len(windows)}
    if len(set(lengths.values())) != 1 or len(dims) < 2:
        raise ValueError(f"{_TINY}EMBED_DIMS, DEPTHS, NUM_HEADS and WINDOW_SIZES need one entry "
                         f"per stage (at least 2 stages); their lengths are {lengths}.")
    for i in range(1, len(dims)):
        if dims[i] % heads[i]:
            raise ValueError(f"{_TINY}EMBED_DIMS[{i}] {dims[i]} is not divisible by "
                             f"{_TINY}NUM_HEADS[{i}] {heads[i]}.")
    factor = 2 ** (len(dims) - 2)
    if image_size % factor:
        raise ValueError(f"{_SIZE_KEY} {image_size} is not a multiple of {factor}, the "
                         f"downsampling of a {len(dims)}-stage TinyViT.")


@PROMPT_SEG_ENCODER_REGISTRY.register()
def tiny_vit(cfg) -> PromptSegEncoder:
    """LiteMedSAM's :class:`TinyViT` with the sizes of ``MODEL.PROMPT_SEG.TINY_VIT`` (defaults:
    LiteMedSAM's, 256 px -> [N, 256, 64, 64])."""
    node, image_size = cfg.MODEL.PROMPT_SEG.TINY_VIT, cfg.INPUT.PROMPT_SEG.IMAGE_SIZE
    _check_tiny_vit(image_size, node.EMBED_DIMS, node.DEPTHS, node.NUM_HEADS, node.WINDOW_SIZES)
    module = TinyViT(embed_dims=list(node.EMBED_DIMS), depths=list(node.DEPTHS),
                     num_heads=list(node.NUM_HEADS), window_sizes=list(node.WINDOW_SIZES),
                     mlp_ratio=node.MLP_RATIO, mbconv_expand_ratio=node.MBCONV_EXPAND_RATIO,
                     local_conv_size=node.LOCAL_CONV_SIZE, drop_path_rate=node.DROP_PATH_RATE,
                     grad_checkpoint=node.GRAD_CHECKPOINT, out_chans=EMBED_CHANNELS)
    embedding = tiny_vit_embedding_size(image_size, len(node.EMBED_DIMS))
    return PromptSegEncoder(module, image_size, embedding, "minmax")
