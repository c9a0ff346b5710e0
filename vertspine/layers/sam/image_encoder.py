"""SAM's image encoder on inputs of any size.

segment_anything's ``ImageEncoderViT.forward`` adds ``pos_embed`` as built, so it only takes
the square side it was built for. :func:`encode_image` pads the input to a multiple of the patch
(bottom/right, zeros) and resizes ``pos_embed`` to the token grid (bicubic, as ViTDet); the
blocks already pad token grids to the window size and interpolate their relative-position
tables. At the built size it computes exactly what ``ImageEncoderViT.forward`` computes.
"""
import torch.nn.functional as F
from torch import Tensor, nn

from ..engines import GraphSignature

__all__ = ["SAM_ENCODER_SIGNATURE", "encode_image", "resize_abs_pos"]

# The image encoder as an exported graph: images [N, 3, S, S] -> image_embeddings [N, C, h, w],
# any N (see vertspine.layers.engines).
SAM_ENCODER_SIGNATURE = GraphSignature(inputs=("images",), outputs=("image_embeddings",),
                                       dynamic_axes={"images": {0: "batch"}})


def resize_abs_pos(pos_embed: Tensor, height: int, width: int) -> Tensor:
    """``pos_embed`` [1, h, w, C] resized (bicubic, align_corners False) to [1, height, width, C];
    returned as is when the grid already matches."""
    if pos_embed.shape[1:3] == (height, width):
        return pos_embed
    pos = F.interpolate(pos_embed.permute(0, 3, 1, 2), size=(height, width), mode="bicubic",
                        align_corners=False)
    return pos.permute(0, 2, 3, 1)


def encode_image(encoder: nn.Module, x: Tensor) -> Tensor:
    """Run a segment_anything ``ImageEncoderViT`` on normalised images of any size.

    Args:
        encoder: the encoder (its ``neck`` may be an ``nn.Identity``).
        x: [N, C, H, W] normalised images.
    Returns:
        [N, C_out, ceil(H/P), ceil(W/P)]: the neck's output (C_out = its width), or the last
        block's tokens (C_out = encoder width) when the neck is an identity. P is the patch
        side.
    """
    patch = encoder.patch_embed.proj.stride[0]
    pad_h, pad_w = (-x.shape[-2]) % patch, (-x.shape[-1]) % patch
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    tokens = encoder.patch_embed(x)  # [N, h, w, embed_dim]
    if encoder.pos_embed is not None:
        tokens = tokens + resize_abs_pos(encoder.pos_embed, tokens.shape[1], tokens.shape[2])
    for block in encoder.blocks:
        tokens = block(tokens)
    return encoder.neck(tokens.permute(0, 3, 1, 2))
