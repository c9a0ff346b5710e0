"""Building Segment Anything models of any size from segment_anything's own modules.

:func:`build_sam` makes what segment_anything's ``sam_model_registry`` makes (same modules,
same arguments, same construction order, so the same random initialisation under the same
seed), with the input side as a parameter: the image-embedding grid follows it
(``image_size / patch_size``, 64 x 64 for SAM and MedSAM at 1024 px). Its three parts are also
built alone, for models that pair SAM's prompt encoder and mask decoder with another image
encoder (LiteMedSAM's TinyViT, DAFT's EfficientViT: 256 px input, 64 x 64 embedding).

segment_anything is imported inside the functions.
"""
from dataclasses import dataclass
from functools import partial
from typing import Mapping, Optional, Tuple, Union

import torch
from torch import nn

__all__ = [
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "SAM_SIZES",
    "SamSize",
    "build_sam",
    "build_sam_image_encoder",
    "build_sam_mask_decoder",
    "build_sam_prompt_encoder",
]

# Pixel statistics of SAM's input normalisation (RGB, 0..255 scale).
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SamSize:
    """Widths and depths of a SAM (everything but the input side).

    Attributes:
        encoder_dim: image-encoder token width.
        encoder_depth: image-encoder blocks.
        encoder_heads: image-encoder attention heads.
        global_attn_indexes: blocks with global attention (the others use windows).
        window_size: window side in tokens (0 = global attention in every block).
        use_rel_pos: decomposed relative positions in the encoder's attention.
        use_abs_pos: learned absolute position embedding ``pos_embed`` (SAM: True; LVM-Med's
            ViT-B: False).
        patch_size: patch side in pixels, also the image embedding's stride.
        mlp_ratio: encoder MLP width / token width.
        prompt_dim: width of the image embedding (the encoder neck's output), of the prompt
            encoder and of the mask decoder (its tokens and IoU head).
        decoder_depth: two-way transformer blocks.
        decoder_mlp_dim: two-way transformer MLP width.
        decoder_heads: two-way transformer heads.
        mask_in_chans: hidden channels of the prompt encoder's mask downscaling.
    """

    encoder_dim: int
    encoder_depth: int
    encoder_heads: int
    global_attn_indexes: Tuple[int, ...] = ()
    window_size: int = 0
    use_rel_pos: bool = False
    use_abs_pos: bool = True
    patch_size: int = 16
    mlp_ratio: float = 4.0
    prompt_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_heads: int = 8
    mask_in_chans: int = 16

    def check(self, image_size: int, names: Optional[Mapping[str, str]] = None) -> None:
        """Raise before building when the sizes cannot make an encoder for ``image_size``.

        Args:
            image_size: the square input side in pixels.
            names: how the errors call a field (or "image_size"), e.g. the config key that
                sets it; fields not in it are called by their own name.
        Raises:
            ValueError: ``image_size`` not a multiple of ``patch_size``, ``encoder_dim`` not
                divisible by ``encoder_heads``, or a global-attention block outside the depth.
        """
        names = names or {}

        def name(field: str) -> str:
            return names.get(field, field)

        if image_size % self.patch_size:
            raise ValueError(f"{name('image_size')} {image_size} is not a multiple of "
                             f"{name('patch_size')} {self.patch_size}.")
        if self.encoder_dim % self.encoder_heads:
            raise ValueError(f"{name('encoder_dim')} {self.encoder_dim} is not divisible by "
                             f"{name('encoder_heads')} {self.encoder_heads}.")
        bad = [i for i in self.global_attn_indexes if not 0 <= i < self.encoder_depth]
        if bad:
            raise ValueError(
                f"{name('global_attn_indexes')} {list(self.global_attn_indexes)} has blocks {bad} "
                f"outside 0..{self.encoder_depth - 1} "
                f"({name('encoder_depth')} {self.encoder_depth}).")


def _official(dim: int, depth: int, heads: int, global_blocks: Tuple[int, ...]) -> SamSize:
    """The sizes of segment_anything's ``_build_sam``."""
    return SamSize(encoder_dim=dim, encoder_depth=depth, encoder_heads=heads,
                   global_attn_indexes=global_blocks, window_size=14, use_rel_pos=True)


# The released SAM sizes (segment_anything's build_sam.py); MedSAM is "vit_b".
SAM_SIZES = {
    "vit_b": _official(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": _official(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": _official(1280, 32, 16, (7, 15, 23, 31)),
}


def _size(size: Union[str, SamSize]) -> SamSize:
    if isinstance(size, SamSize):
        return size
    if size not in SAM_SIZES:
        raise ValueError(f"SAM size {size!r} is not one of {tuple(SAM_SIZES)}; pass a SamSize "
                         "for other sizes.")
    return SAM_SIZES[size]


def build_sam_image_encoder(size: Union[str, SamSize], image_size: int = 1024, in_chans: int = 3,
                            names: Optional[Mapping[str, str]] = None) -> nn.Module:
    """segment_anything's ``ImageEncoderViT`` for ``image_size`` x ``image_size`` inputs.

    Args:
        size: a :class:`SamSize` or a name in :data:`SAM_SIZES`.
        image_size: input side S in pixels: sets ``pos_embed`` ([1, S/P, S/P, encoder_dim]) and
            the global blocks' relative-position tables (2 S / P - 1 rows).
        in_chans: input channels.
        names: error names of the fields (see :meth:`SamSize.check`).
    Returns:
        The encoder: [N, in_chans, S, S] -> [N, prompt_dim, S/P, S/P].
    """
    from segment_anything.modeling import ImageEncoderViT

    size = _size(size)
    size.check(image_size, names)
    return ImageEncoderViT(
        img_size=image_size, patch_size=size.patch_size, in_chans=in_chans,
        embed_dim=size.encoder_dim, depth=size.encoder_depth, num_heads=size.encoder_heads,
        mlp_ratio=size.mlp_ratio, out_chans=size.prompt_dim, qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU,
        use_abs_pos=size.use_abs_pos, use_rel_pos=size.use_rel_pos, rel_pos_zero_init=True,
        window_size=size.window_size, global_attn_indexes=tuple(size.global_attn_indexes),
    )


def build_sam_prompt_encoder(prompt_dim: int, image_size: int, embedding_size: int,
                             mask_in_chans: int = 16) -> nn.Module:
    """segment_anything's ``PromptEncoder``.

    Args:
        prompt_dim: embedding width (256 for every released SAM, MedSAM and LiteMedSAM).
        image_size: input side in pixels; boxes and points are given in this frame.
        embedding_size: side of the image-embedding grid (image_size / 16 for SAM; 64 for
            LiteMedSAM and DAFT at 256 px).
        mask_in_chans: hidden channels of the mask downscaling.
    """
    from segment_anything.modeling import PromptEncoder

    return PromptEncoder(embed_dim=prompt_dim,
                         image_embedding_size=(embedding_size, embedding_size),
                         input_image_size=(image_size, image_size), mask_in_chans=mask_in_chans)


def build_sam_mask_decoder(size: Union[str, SamSize]) -> nn.Module:
    """segment_anything's ``MaskDecoder`` (3 multimask outputs plus one, IoU head of depth 3,
    width ``prompt_dim``) on a ``TwoWayTransformer`` of the given depth, MLP width and heads."""
    from segment_anything.modeling import MaskDecoder, TwoWayTransformer

    size = _size(size)
    return MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=size.decoder_depth, embedding_dim=size.prompt_dim,
                                      mlp_dim=size.decoder_mlp_dim, num_heads=size.decoder_heads),
        transformer_dim=size.prompt_dim, iou_head_depth=3, iou_head_hidden_dim=size.prompt_dim,
    )


def build_sam(size: Union[str, SamSize], image_size: int = 1024, *, seed: Optional[int] = None,
              names: Optional[Mapping[str, str]] = None) -> nn.Module:
    """A segment_anything ``Sam`` (image encoder, prompt encoder, mask decoder), in eval mode as
    segment_anything's builders return it, randomly initialised.

    Load weights with :func:`~vertspine.layers.sam.checkpoint.load_sam_checkpoint`.

    Args:
        size: a :class:`SamSize` or "vit_b", "vit_l", "vit_h" (:data:`SAM_SIZES`).
        image_size: input side S in pixels (1024 for SAM and MedSAM); the image embedding is
            [N, prompt_dim, S/P, S/P].
        seed: when given, the CPU generator is seeded with it inside ``torch.random.fork_rng``:
            the same seed gives the same weights, and the global random state is left as it
            was. None draws from (and advances) the global state.
        names: error names of the fields (see :meth:`SamSize.check`).
    Returns:
        The model; with ``SAM_SIZES[name]`` and S = 1024, parameter for parameter what
        ``sam_model_registry[name]()`` builds under the same seed.
    """
    from segment_anything.modeling import Sam

    size = _size(size)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        sam = Sam(
            image_encoder=build_sam_image_encoder(size, image_size, names=names),
            prompt_encoder=build_sam_prompt_encoder(size.prompt_dim, image_size,
                                                    image_size // size.patch_size,
                                                    size.mask_in_chans),
            mask_decoder=build_sam_mask_decoder(size),
            pixel_mean=list(SAM_PIXEL_MEAN), pixel_std=list(SAM_PIXEL_STD),
        )
    return sam.eval()
