"""Box-prompted inference on whole npz cases with an image-encoder engine and a box-decoder
engine (each "torch", "onnxruntime" or "openvino"; see :mod:`vertspine.layers.engines`).

2D: the image is preprocessed once (:func:`vertspine.data.prompt_seg.preprocess_image`) and
encoded once; all its boxes (inclusive pixel indices, clipped onto the image by the reader) are
scaled to the S x S frame in float (:func:`~vertspine.data.prompt_seg.scale_boxes`) and decoded
``box_chunk`` at a time; each box's logits are cropped to the resized area, resized to the
original (H, W) (:func:`.decoding.postprocess_logits`) and thresholded at 0; overlapping masks go
to the higher predicted IoU, the smaller mask or the nearer intensity (``overlap``;
:func:`vertspine.evaluation.prompt_seg_metrics.merge_box_masks`);
box ``i`` gets label ``i + 1``.

3D: :func:`.propagation.propagate_boxes` with this predictor as its
:class:`~.propagation.SliceSegmenter`: every slice inside any box's z-range is preprocessed and
encoded once (``batch_slices`` per encoder call), each box segmented at its middle slice and
propagated to both ends. The number of slices the encoder actually received is counted. With
mask prompts (a decoder exported from a model with ``MODEL.PROMPT_SEG.MASK_PROMPT`` and
``mask_prompt=True``) each propagated slice also gets the previous slice's mask, taken to the
S x S frame as the training mapper takes masks (:func:`~vertspine.data.prompt_seg.resize_labels`).
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from vertspine.data.prompt_seg import (PromptSegCase, preprocess_image, resize_labels,
                                       resized_shape, scale_boxes)
from vertspine.evaluation.prompt_seg_metrics import (OVERLAP_POLICIES, merge_box_masks,
                                                     overlap_scores)
from vertspine.layers.engines import InferenceEngine, build_engine, load_onnx_engine

from .decoding import postprocess_logits
from .export import (PROMPT_SEG_ENCODER_SIGNATURE, BoxDecoder, decoder_signature, example_inputs,
                     read_export_manifest)
from .propagation import COLLAPSE_POLICIES, SliceSegmenter, propagate_boxes

__all__ = ["BoxPromptPredictor", "CasePrediction", "inference_options"]


def inference_options(cfg) -> Dict[str, Any]:
    """``MODEL.PROMPT_SEG.OVERLAP`` and ``.PROPAGATION`` as :class:`BoxPromptPredictor` keyword
    arguments.

    Raises:
        ValueError: a value out of range, naming its key.
    """
    node = cfg.MODEL.PROMPT_SEG.PROPAGATION
    checks = (("EXPAND", node.EXPAND >= 0, ">= 0 (px of a 256-px frame)"),
              ("MIN_IOU", 0 <= node.MIN_IOU <= 1, "in [0, 1]"),
              ("ON_COLLAPSE", node.ON_COLLAPSE in COLLAPSE_POLICIES,
               f"one of {COLLAPSE_POLICIES}"))
    for key, ok, wanted in checks:
        if not ok:
            raise ValueError(f"MODEL.PROMPT_SEG.PROPAGATION.{key} = {node[key]!r} must be "
                             f"{wanted}.")
    overlap = cfg.MODEL.PROMPT_SEG.OVERLAP
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"MODEL.PROMPT_SEG.OVERLAP = {overlap!r} must be one of "
                         f"{OVERLAP_POLICIES}.")
    if node.MASK_PROMPT and not cfg.MODEL.PROMPT_SEG.MASK_PROMPT:
        raise ValueError("MODEL.PROMPT_SEG.PROPAGATION.MASK_PROMPT needs a model with mask "
                         "prompts: set MODEL.PROMPT_SEG.MASK_PROMPT (and train it so).")
    return {"expand": float(node.EXPAND), "min_iou": float(node.MIN_IOU),
            "on_collapse": node.ON_COLLAPSE, "within_prompt": bool(node.WITHIN_PROMPT),
            "mask_prompt": bool(node.MASK_PROMPT), "overlap": overlap}


@dataclass
class CasePrediction:
    """A case's result.

    Attributes:
        segs: uint16 [H, W] / [D, H, W]; 0 background, box i -> i + 1.
        encoder_calls: images (slices) the image encoder received.
        distinct_slices: 3D: slices inside any box's z-range (None in 2D).
    """

    segs: np.ndarray
    encoder_calls: int
    distinct_slices: Optional[int] = None


class BoxPromptPredictor:
    """A box-prompted segmenter as two engines, applied to :class:`PromptSegCase` inputs."""

    def __init__(self, encoder: InferenceEngine, decoder: InferenceEngine, *, image_size: int,
                 box_chunk: int = 16, batch_slices: int = 8, expand: float = 3.0,
                 min_iou: float = 0.0, on_collapse: str = "stop", within_prompt: bool = True,
                 mask_prompt: bool = False, overlap: str = "iou", decoder_masks: bool = False,
                 device: torch.device = torch.device("cpu")):
        """
        Args:
            encoder: ``images`` [N, 3, S, S] -> ([N, 256, E, E],).
            decoder: ``(embeddings [1, 256, E, E], boxes [B, 4] S x S frame)`` ->
                ([B, 4E, 4E] logits, [B] predicted IoU) (:class:`.export.BoxDecoder`); with
                ``decoder_masks`` also ``mask_prompts`` [B, S, S] and ``has_mask_prompt`` [B].
            image_size: S in px.
            box_chunk: boxes per decoder call.
            batch_slices: 3D slices per encoder call.
            overlap: where masks overlap, "iou" (higher predicted IoU), "smaller" or
                "intensity" (the nearest reference intensity, pixel by pixel) wins.
            expand, min_iou, on_collapse, within_prompt, mask_prompt: 3D propagation
                (:func:`.propagation.propagate_boxes`).
            decoder_masks: the decoder takes mask prompts (``mask_prompt`` needs it).
            device: where inputs are put (a torch engine's model device; exported engines run
                on the CPU and take inputs from anywhere).
        """
        if box_chunk < 1 or batch_slices < 1:
            raise ValueError(f"box_chunk ({box_chunk}) and batch_slices ({batch_slices}) must "
                             "be >= 1.")
        if mask_prompt and not decoder_masks:
            raise ValueError("Propagation with mask prompts needs a decoder that takes them (a "
                             "model built with MODEL.PROMPT_SEG.MASK_PROMPT).")
        self.decoder_masks = bool(decoder_masks)
        self.encoder, self.decoder, self.image_size = encoder, decoder, int(image_size)
        self.box_chunk, self.batch_slices = int(box_chunk), int(batch_slices)
        self.device = torch.device(device)
        self.overlap = overlap
        self.propagation = {"expand": expand, "min_iou": min_iou, "on_collapse": on_collapse,
                            "within_prompt": within_prompt, "mask_prompt": mask_prompt}

    @classmethod
    def from_model(cls, model: nn.Module, kind: str = "torch", *, cache_dir: Optional[str] = None,
                   threads: int = 0, **kwargs) -> "BoxPromptPredictor":
        """Engines of a :class:`PromptSegmentor` (exported to ``cache_dir`` for "onnxruntime" /
        "openvino", reused when the weights are unchanged). ``kwargs`` as ``__init__``."""
        model = model.eval()
        if kind != "torch":
            model = model.to("cpu")
        with torch.no_grad():
            embedding = model.image_encoder(
                torch.zeros(1, 3, model.image_size, model.image_size, device=model.device))
        examples = example_inputs(model.image_size, embedding.shape[-1], embedding.shape[1],
                                  model.mask_prompt)
        parts = ((model.image_encoder, "encoder", PROMPT_SEG_ENCODER_SIGNATURE),
                 (BoxDecoder(model.prompt_encoder, model.mask_decoder), "decoder",
                  decoder_signature(model.mask_prompt)))
        encoder, decoder = (build_engine(kind, module, examples[part], signature,
                                         cache_dir=cache_dir, threads=threads)
                            for module, part, signature in parts)
        kwargs.setdefault("box_chunk", model.box_chunk)
        return cls(encoder, decoder, image_size=model.image_size, device=model.device,
                   decoder_masks=model.mask_prompt, **kwargs)

    @classmethod
    def from_export(cls, folder: str, kind: str, *, threads: int = 0,
                    **kwargs) -> "BoxPromptPredictor":
        """Engines of the files :func:`.export.export_prompt_seg` wrote into ``folder``."""
        manifest = read_export_manifest(folder)
        encoder = load_onnx_engine(kind, manifest["paths"]["encoder"],
                                   PROMPT_SEG_ENCODER_SIGNATURE, threads=threads)
        masks = bool(manifest.get("mask_prompt", False))
        decoder = load_onnx_engine(kind, manifest["paths"]["decoder"], decoder_signature(masks),
                                   threads=threads)
        return cls(encoder, decoder, image_size=manifest["image_size"], decoder_masks=masks,
                   **kwargs)

    @property
    def kind(self) -> str:
        return self.encoder.kind

    def encode(self, images: Sequence[np.ndarray],
               ct_window: Optional[Sequence[float]] = None) -> Tensor:
        """[N, 256, E, E] embeddings of N images ([H, W] or [H, W, 3], original values)."""
        batch = np.stack([preprocess_image(image, self.image_size, ct_window)[0]
                          for image in images])
        return self.encoder(torch.from_numpy(batch).to(self.device))[0]

    def _mask_inputs(self, mask_prompts: Optional[np.ndarray], count: int,
                     original_size: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """The decoder's ``(mask_prompts [B, S, S], has_mask_prompt [B])`` inputs (none when
        the decoder takes no masks): bool [B, H, W] masks in the S x S frame, or zeros."""
        if not self.decoder_masks:
            if mask_prompts is not None:
                raise ValueError("Mask prompts given, but the decoder takes none (a model built "
                                 "without MODEL.PROMPT_SEG.MASK_PROMPT).")
            return ()
        side = self.image_size
        masks = np.zeros((count, side, side), np.float32)
        flags = np.zeros(count, np.float32)
        if mask_prompts is not None:
            if np.shape(mask_prompts) != (count, *original_size):
                raise ValueError(f"mask_prompts are {list(np.shape(mask_prompts))}, expected "
                                 f"[{count}, {original_size[0]}, {original_size[1]}].")
            for i, mask in enumerate(mask_prompts):
                masks[i] = resize_labels(np.asarray(mask, np.uint8), side)
            flags[:] = 1.0
        return (torch.from_numpy(masks).to(self.device), torch.from_numpy(flags).to(self.device))

    def decode(self, embedding: Tensor, boxes: np.ndarray, original_size: Tuple[int, int],
               mask_prompts: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Masks and predicted IoU of boxes on one image.

        Args:
            embedding: [1, 256, E, E] of the image.
            boxes: [B, 4] XYXY inclusive pixel indices of the original image (float).
            original_size: (H, W) of the original image.
            mask_prompts: optional bool [B, H, W], a mask prompt per box (decoders with masks).
        Returns:
            (bool [B, H, W] masks, float32 [B] predicted IoU).
        """
        height, width = original_size
        resized = resized_shape(height, width, self.image_size)
        scaled = torch.from_numpy(scale_boxes(boxes, height, width, self.image_size)).to(
            self.device, torch.float32)
        prompts = self._mask_inputs(mask_prompts, len(scaled), original_size)
        masks, ious = [], []
        for start in range(0, len(scaled), self.box_chunk):
            chunk = slice(start, start + self.box_chunk)
            logits, iou = self.decoder(embedding, scaled[chunk], *(p[chunk] for p in prompts))
            out = postprocess_logits(logits.float(), self.image_size, resized, original_size)
            masks.append((out > 0).cpu().numpy())
            ious.append(iou.float().cpu().numpy())
        if not masks:
            return np.zeros((0, height, width), bool), np.zeros(0, np.float32)
        return np.concatenate(masks), np.concatenate(ious).astype(np.float32)

    def predict(self, case: PromptSegCase,
                ct_window: Optional[Sequence[float]] = None) -> CasePrediction:
        """Segment every box of a case (``case.boxes`` must be set; see the module doc).

        Args:
            case: a validated npz case with boxes.
            ct_window: (level, width) HU applied before the min-max normalisation, or None.
        """
        if case.boxes is None or not len(case.boxes):
            raise ValueError(f"{case.path}: no boxes to segment.")
        if case.spatial_dims == 2:
            height, width = case.spatial_shape
            embedding = self.encode([case.imgs], ct_window)
            masks, ious = self.decode(embedding, case.boxes, (height, width))
            segs = merge_box_masks(masks, overlap_scores(masks, ious, self.overlap, case.imgs),
                                   np.arange(1, len(masks) + 1))
            return CasePrediction(segs, encoder_calls=1)
        calls = []
        depth, height, width = case.spatial_shape

        def embed(slices: np.ndarray):
            calls.append(len(slices))
            return self.encode(list(slices), ct_window).split(1)

        segmenter = SliceSegmenter(
            embed=embed, decode=lambda embedding, boxes, masks=None: self.decode(
                embedding, boxes, (height, width), masks))
        segs, _, report = propagate_boxes(case.imgs, case.boxes, segmenter,
                                          batch_slices=self.batch_slices, overlap=self.overlap,
                                          **self.propagation)
        return CasePrediction(segs, encoder_calls=sum(calls),
                              distinct_slices=report.distinct_slices)
