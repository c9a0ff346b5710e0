"""SAM prompted with boxes: the per-box mask-decoder output token as the box's spatial feature.

VertFound keeps, for every box prompt, the output of SAM's two-way transformer at mask-token
slot 0 (the token of the single mask that ``multimask_output=False`` returns): a vector of the
mask decoder's width (256 for the official models). :class:`SamBoxEncoder` computes it with
segment_anything's own modules, running the image encoder once per image and the prompt encoder
and two-way transformer batched over all boxes; the mask upscaling and IoU head are skipped.
"""
import logging
import os
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torchvision.ops import roi_align

from vertspine.layers.engines import ENGINES, InferenceEngine, build_engine
from vertspine.layers.sam import (
    SAM_ENCODER_SIGNATURE,
    SAM_PREPROCESSING,  # re-exported: identity.py records it in caches
    SAM_SIZES,
    SamSize,
    build_sam,
    load_sam_checkpoint,
    preprocess_images,
    resized_shape,
)

__all__ = ["SAM_PREPROCESSING", "SamBoxEncoder", "build_vertfound_sam"]

logger = logging.getLogger(__name__)
SAM_MODEL_TYPES = (*SAM_SIZES, "tiny")
_TINY = "MODEL.VERTFOUND.SAM.TINY."
# What the errors call the tiny SAM's sizes: their config keys.
_TINY_KEYS = {"image_size": _TINY + "IMAGE_SIZE", "patch_size": _TINY + "PATCH_SIZE",
              "encoder_dim": _TINY + "ENCODER_DIM", "encoder_heads": _TINY + "ENCODER_HEADS",
              "encoder_depth": _TINY + "ENCODER_DEPTH"}


def build_vertfound_sam(model_type: str, checkpoint: str = "", seed: int = 0,
                        tiny=None) -> nn.Module:
    """VertFound's segment_anything ``Sam``: a released size at 1024 px, or a tiny one for tests.

    Built by :func:`vertspine.layers.sam.build_sam` (the modules and initialisation of
    segment_anything's ``sam_model_registry``), filled by
    :func:`vertspine.layers.sam.load_sam_checkpoint`.

    Args:
        model_type: "vit_b", "vit_l", "vit_h" (1024 px input) or "tiny".
        checkpoint: official SAM or MedSAM checkpoint, loaded strictly ("" = random init).
        seed: seed of the random initialisation (used when there is no checkpoint).
        tiny: for "tiny", a config node or object with IMAGE_SIZE, PATCH_SIZE, ENCODER_DIM,
            ENCODER_DEPTH, ENCODER_HEADS, PROMPT_DIM, DECODER_DEPTH, DECODER_MLP_DIM,
            DECODER_HEADS (global attention, no relative positions).
    Raises:
        ValueError: unknown model type, missing checkpoint file, a checkpoint with "tiny", or
            tiny sizes that do not fit (naming the MODEL.VERTFOUND.SAM.TINY key).
    """
    if model_type not in SAM_MODEL_TYPES:
        raise ValueError(
            f"MODEL.VERTFOUND.SAM.MODEL_TYPE is {model_type!r}; use one of {SAM_MODEL_TYPES}."
        )
    if checkpoint and not os.path.isfile(checkpoint):
        raise ValueError(
            f"MODEL.VERTFOUND.SAM.CHECKPOINT {checkpoint!r} does not exist; download it with "
            "scripts/download_weights.py or set the key to the file."
        )
    if model_type == "tiny" and checkpoint:
        raise ValueError("MODEL.VERTFOUND.SAM.CHECKPOINT must be empty for the tiny SAM.")
    if model_type == "tiny":
        size = SamSize(
            encoder_dim=tiny.ENCODER_DIM, encoder_depth=tiny.ENCODER_DEPTH,
            encoder_heads=tiny.ENCODER_HEADS, patch_size=tiny.PATCH_SIZE,
            prompt_dim=tiny.PROMPT_DIM, decoder_depth=tiny.DECODER_DEPTH,
            decoder_mlp_dim=tiny.DECODER_MLP_DIM, decoder_heads=tiny.DECODER_HEADS)
        return build_sam(size, tiny.IMAGE_SIZE, seed=seed, names=_TINY_KEYS)
    sam = build_sam(model_type, 1024, seed=seed)
    if checkpoint:
        logger.info("SAM %s from %s:\n%s", model_type, checkpoint, load_sam_checkpoint(
            sam, checkpoint, model_type=model_type,
            model_type_key="MODEL.VERTFOUND.SAM.MODEL_TYPE"))
    return sam


class SamBoxEncoder:
    """Mask tokens of box prompts from a segment_anything ``Sam``.

    A plain helper (not a module): the ``Sam`` stays registered where its owner keeps it
    (``VertFound.sam``), so parameter names are segment_anything's.

    Attributes:
        sam: the wrapped model (``sam.image_encoder``, ``sam.prompt_encoder``,
            ``sam.mask_decoder`` as in segment_anything).
        image_size: SAM's square input side S (pixels), read from the model.
        token_dim: width of the mask token, read from the mask decoder.
        roi_size: side k of the optional RoI-aligned image-embedding features (0 = none).
        feature_dim: width of a box's feature: the mask token, then (``roi_size`` > 0) the
            k x k RoIAlign of the image embedding in the box and in the box enlarged
            ``roi_context`` times about its centre, then in the box moved by each of
            ``roi_shifts`` box heights along the image's y axis ((2 + len(roi_shifts)) C k^2
            values). The RoI part is not in VertFound; it gives encoders trained from scratch a
            direct local feature. Shifts of -1 and 1 pool where the neighbouring vertebrae lie:
            beyond the run's ends, the skull, the sacrum or the edge of the field.
        engine: what runs the image encoder: "torch", or "onnxruntime" / "openvino" for a
            frozen encoder, exported on the first call (when the weights are loaded) into
            ``engine_cache_dir`` (see :mod:`vertspine.layers.engines`).
    """

    def __init__(self, sam: nn.Module, box_chunk: int = 64, roi_size: int = 0,
                 roi_context: float = 2.0, roi_shifts: Sequence[float] = (), *,
                 engine: str = "torch", engine_cache_dir: str = ""):
        if engine not in ENGINES:
            raise ValueError(f"MODEL.VERTFOUND.SAM.ENGINE '{engine}' is not one of {ENGINES}.")
        self.sam = sam
        self.engine, self.engine_cache_dir = engine, engine_cache_dir
        self._exported: Optional[InferenceEngine] = None
        self.box_chunk = max(1, int(box_chunk))
        self.image_size = int(sam.image_encoder.img_size)
        self.token_dim = int(sam.mask_decoder.transformer_dim)
        self.roi_size, self.roi_context = int(roi_size), float(roi_context)
        self.roi_shifts = tuple(float(s) for s in roi_shifts)
        embedding_dim = int(sam.prompt_encoder.embed_dim)
        self.roi_dim = (2 + len(self.roi_shifts)) * embedding_dim * self.roi_size ** 2
        self.feature_dim = self.token_dim + self.roi_dim

    def unused_parameters(self) -> List[nn.Parameter]:
        """Parameters the mask token does not depend on (mask upscaling and heads, IoU head,
        point and mask prompt embeddings); frozen so DDP sees no unused trainable ones."""
        decoder, prompt = self.sam.mask_decoder, self.sam.prompt_encoder
        modules = [decoder.output_upscaling, decoder.output_hypernetworks_mlps,
                   decoder.iou_prediction_head, prompt.mask_downscaling, prompt.not_a_point_embed,
                   prompt.point_embeddings[0], prompt.point_embeddings[1]]
        return [p for m in modules for p in m.parameters()]

    def input_size(self, height: int, width: int) -> Tuple[int, int]:
        """(h, w) of an image of (height, width) resized to SAM's input (before padding)."""
        return resized_shape(height, width, self.image_size)

    def preprocess(self, images: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Resize (longest side to S), normalise and pad images as ``SAM_PREPROCESSING`` says
        (:func:`vertspine.layers.sam.preprocess_images` with the model's pixel statistics).

        Args:
            images: B tensors [3, H, W] in RGB, values 0..255.
        Returns:
            (batch [B, 3, S, S] float, [B, 4] factors (sx, sy, sx, sy) taking XYXY boxes from
            image pixels to SAM input pixels, per axis as ``ResizeLongestSide.apply_boxes``).
        """
        return preprocess_images(images, self.image_size, self.sam.pixel_mean, self.sam.pixel_std)

    def encode_images(self, batch: Tensor) -> Tensor:
        """SAM image embeddings [B, C, h, w] of a preprocessed batch [B, 3, S, S], by
        ``engine`` (on the batch's device)."""
        if self.engine == "torch":
            return self.sam.image_encoder(batch)
        if self._exported is None:
            example = batch[:1].detach().expand(2, -1, -1, -1)  # a dynamic axis needs size >= 2
            self._exported = build_engine(self.engine, self.sam.image_encoder, (example,),
                                          SAM_ENCODER_SIGNATURE, cache_dir=self.engine_cache_dir)
        return self._exported(batch)[0]

    def box_tokens(self, embeddings: Tensor, boxes: Tensor, image_index: Tensor) -> Tensor:
        """Mask-token slot 0 of the two-way transformer for each box prompt.

        Args:
            embeddings: [B, C, h, w] image embeddings from :meth:`encode_images`.
            boxes: [M, 4] XYXY boxes in SAM input pixels (the preprocessed frame).
            image_index: [M] int64, the image (row of ``embeddings``) of each box.
        Returns:
            [M, C] tokens, equal to ``hs[:, 1]`` of ``sam.mask_decoder.transformer`` when
            segment_anything's ``MaskDecoder`` is called with the same prompt.
        """
        decoder, prompt = self.sam.mask_decoder, self.sam.prompt_encoder
        out = []
        image_pe = prompt.get_dense_pe()
        for start in range(0, boxes.shape[0], self.box_chunk):
            chunk = boxes[start:start + self.box_chunk]
            sparse, dense = prompt(points=None, boxes=chunk, masks=None)
            count = chunk.shape[0]
            output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], 0)
            tokens = torch.cat([output_tokens[None].expand(count, -1, -1), sparse], dim=1)
            src = embeddings[image_index[start:start + self.box_chunk]] + dense
            pos = image_pe.expand(count, -1, -1, -1)
            hs, _ = decoder.transformer(src, pos, tokens)
            out.append(hs[:, 1])
        if not out:
            return embeddings.new_zeros((0, self.token_dim))
        return torch.cat(out)

    def box_rois(self, embeddings: Tensor, boxes: Tensor, image_index: Tensor) -> Tensor:
        """RoIAlign features of each box, of its enlarged context box and of the box moved by
        each of ``roi_shifts`` box heights along y.

        Args:
            embeddings: [B, C, h, w]. boxes: [M, 4] XYXY in SAM input pixels. image_index: [M].
        Returns:
            [M, (2 + S) C k^2] (box bins, context bins, then each shifted box's bins),
            k = ``roi_size``, S = ``len(roi_shifts)``.
        """
        centre, half = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]) / 2
        context = torch.cat([centre - half * self.roi_context, centre + half * self.roi_context], 1)
        height = boxes[:, 3:4] - boxes[:, 1:2]
        zero = torch.zeros_like(height)
        shifted = [boxes + torch.cat([zero, height, zero, height], 1) * shift
                   for shift in self.roi_shifts]
        scale = embeddings.shape[-1] / self.image_size
        out = []
        for region in [boxes, context, *shifted]:
            rois = torch.cat([image_index[:, None].to(region.dtype), region], dim=1)
            pooled = roi_align(embeddings, rois, self.roi_size, spatial_scale=scale,
                               sampling_ratio=2, aligned=True)
            out.append(pooled.flatten(1))
        return torch.cat(out, dim=1)

    def __call__(self, images: Sequence[Tensor], boxes: Sequence[Tensor]) -> List[Tensor]:
        """Features of every box of every image; each image's encoder runs once.

        Args:
            images: B tensors [3, H, W] RGB 0..255.
            boxes: B tensors [N_i, 4] XYXY in the pixels of the matching image.
        Returns:
            B tensors [N_i, feature_dim]: the mask token (and RoI features, see the class doc).
        """
        batch, scales = self.preprocess(images)
        embeddings = self.encode_images(batch)
        counts = [len(b) for b in boxes]
        device = embeddings.device
        prompts = torch.cat([b.to(device, torch.float32) * s for b, s in zip(boxes, scales)])
        prompts = prompts.reshape(-1, 4)
        index = torch.repeat_interleave(torch.arange(len(counts), device=device),
                                        torch.tensor(counts, device=device))
        features = self.box_tokens(embeddings, prompts, index)
        if self.roi_size > 0:
            features = torch.cat([features, self.box_rois(embeddings, prompts, index)], dim=1)
        return list(features.split(counts))
