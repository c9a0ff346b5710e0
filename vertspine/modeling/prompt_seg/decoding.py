"""SAM's mask decoding for any number of boxes on any number of images, in one batch.

segment_anything's ``MaskDecoder.predict_masks`` repeats its image embedding once per prompt
(``repeat_interleave(image_embeddings, n_prompts)``): right for one image, wrong (N x M copies,
then a shape error) for N > 1 images, the crash of MedSAM #28 / SAM #277. :func:`decode_boxes`
runs the same computation on the boxes of all images flattened, each box reading its own
image's embedding by index. With ``multimask_output=False`` (MedSAM, LiteMedSAM, DAFT) only
mask token 0's mask and IoU are kept, so only its hypernetwork MLP is evaluated; the result is
SAM's ``masks[:, 0:1]`` and ``iou_pred[:, 0:1]``. The logits come out at 4 E x 4 E for an
E x E embedding (256 x 256 for every released model) and :func:`postprocess_logits` takes them
to the original image as ``Sam.postprocess_masks`` does.

Mask prompts (3D propagation, ``MODEL.PROMPT_SEG.MASK_PROMPT``): a box may come with a mask, the
object on the previous slice, as SAM's dense prompt. SAM's ``PromptEncoder`` gives all prompts
of a call the same kind of dense embedding (every one a mask, or none); here each box has its
own flag: the masks of all boxes go through ``mask_downscaling`` (zeros where a box has none,
so the graph and the trained parameters are the same for every batch) and the flag picks
between that and ``no_mask_embed``.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["decode_boxes", "dense_prompts", "postprocess_logits", "upsample_logits"]


def dense_prompts(prompt_encoder: nn.Module, count: int, grid: int,
                  mask_prompts: Optional[Tensor] = None,
                  has_mask_prompt: Optional[Tensor] = None) -> Tensor:
    """SAM's dense prompt embedding of ``count`` boxes, each with or without a mask prompt.

    Args:
        prompt_encoder: segment_anything ``PromptEncoder`` (its ``mask_input_size`` is 4E).
        count: M, the number of boxes.
        grid: E, the image embedding's side.
        mask_prompts: [M, S, S] float 0/1 masks in the model's S x S input frame (resized
            bilinearly to 4E x 4E, ``mask_downscaling``'s input), or None: no box has one.
        has_mask_prompt: [M] bool, which rows of ``mask_prompts`` are prompts (the others
            take ``no_mask_embed``); required with ``mask_prompts``.
    Returns:
        [M, C, E, E].
    """
    none = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(count, -1, grid, grid)
    if mask_prompts is None:
        return none
    if has_mask_prompt is None:
        raise ValueError("mask_prompts need has_mask_prompt ([M] bool: which boxes have one).")
    side = 4 * grid
    masks = mask_prompts.to(none.dtype)[:, None]
    if masks.shape[-1] != side:
        masks = F.interpolate(masks, (side, side), mode="bilinear", align_corners=False)
    dense = prompt_encoder.mask_downscaling(masks)
    return torch.where(has_mask_prompt.reshape(-1, 1, 1, 1), dense, none)


def decode_boxes(prompt_encoder: nn.Module, mask_decoder: nn.Module, embeddings: Tensor,
                 boxes: Tensor, image_index: Tensor, mask_prompts: Optional[Tensor] = None,
                 has_mask_prompt: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Mask logits and predicted IoU of box prompts (SAM, ``multimask_output=False``).

    Args:
        prompt_encoder: segment_anything ``PromptEncoder``.
        mask_decoder: segment_anything ``MaskDecoder``.
        embeddings: [N, C, E, E] image embeddings.
        boxes: [M, 4] float XYXY boxes in the model's S x S input pixels.
        image_index: [M] int64, the row of ``embeddings`` each box belongs to.
        mask_prompts, has_mask_prompt: optional [M, S, S] masks and [M] flags
            (:func:`dense_prompts`).
    Returns:
        ([M, 4E, 4E] low-resolution mask logits, [M] predicted IoU); M = 0 gives empty tensors.
    """
    count = boxes.shape[0]
    side = 4 * embeddings.shape[-1]
    if count == 0:
        empty = embeddings.new_zeros((0, side, side))
        return empty, embeddings.new_zeros((0,))
    sparse = prompt_encoder(points=None, boxes=boxes, masks=None)[0]
    dense = dense_prompts(prompt_encoder, count, embeddings.shape[-1], mask_prompts,
                          has_mask_prompt)
    output_tokens = torch.cat([mask_decoder.iou_token.weight, mask_decoder.mask_tokens.weight])
    tokens = torch.cat([output_tokens[None].expand(count, -1, -1), sparse], dim=1)
    src = embeddings[image_index] + dense
    pos = prompt_encoder.get_dense_pe().expand(count, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = mask_decoder.transformer(src, pos, tokens)
    upscaled = mask_decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = mask_decoder.output_hypernetworks_mlps[0](hs[:, 1])  # [M, C / 8]
    masks = (hyper[:, None] @ upscaled.flatten(2)).view(count, *upscaled.shape[-2:])
    iou = mask_decoder.iou_prediction_head(hs[:, 0])[:, 0]
    return masks, iou


def upsample_logits(logits: Tensor, image_size: int) -> Tensor:
    """[M, h, w] logits -> [M, S, S] (bilinear, ``align_corners=False``; as is when h = S)."""
    if logits.shape[-2:] == (image_size, image_size):
        return logits
    return F.interpolate(logits[:, None], (image_size, image_size), mode="bilinear",
                         align_corners=False)[:, 0]


def postprocess_logits(logits: Tensor, image_size: int, resized_size: Tuple[int, int],
                       original_size: Tuple[int, int]) -> Tensor:
    """Logits in the model frame -> logits on the original image (``Sam.postprocess_masks``).

    Args:
        logits: [M, h, w] decoder logits (any h = w; upsampled to S first).
        image_size: S, the padded model input side.
        resized_size: (h, w) of the image after its longest side was resized to S, before the
            bottom/right padding (the part of the frame that is image).
        original_size: (H, W) of the original image.
    Returns:
        [M, H, W] logits (bilinear, ``align_corners=False``); the mask is ``logits > 0``.
    """
    logits = upsample_logits(logits, image_size)[:, :resized_size[0], :resized_size[1]]
    if logits.shape[0] == 0:
        return logits.new_zeros((0, *original_size))
    return F.interpolate(logits[:, None], tuple(original_size), mode="bilinear",
                         align_corners=False)[:, 0]
