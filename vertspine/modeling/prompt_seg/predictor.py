"""Box-prompted inference on whole npz cases with an image-encoder engine and a box-decoder
engine (each "torch", "onnxruntime" or "openvino"; see :mod:`vertspine.layers.engines`).

2D: the image is preprocessed once (:func:`vertspine.data.prompt_seg.preprocess_image`) and
encoded once; all its boxes (inclusive pixel indices, clipped onto the image by the reader) are
scaled to the S x S frame in float (:func:`~vertspine.data.prompt_seg.scale_boxes`) and decoded
``box_chunk`` at a time; each box's logits are cropped to the resized area, resized to the
original (H, W) (:func:`.decoding.postprocess_logits`) and thresholded at 0; overlapping masks go
to the higher predicted IoU or the smaller mask (``overlap``;
:func:`vertspine.evaluation.prompt_seg_metrics.merge_box_masks`);
box ``i`` gets label ``i + 1``.

3D: :func:`.propagation.propagate_boxes` with this predictor as its
:class:`~.propagation.SliceSegmenter`: every slice inside any box's z-range is preprocessed and
encoded once (``batch_slices`` per encoder call), each box segmented at its middle slice and
propagated to both ends. The number of slices the encoder actually received is counted.
"""
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from vertspine.data.prompt_seg import PromptSegCase, preprocess_image, resized_shape, scale_boxes
from vertspine.evaluation.prompt_seg_metrics import (OVERLAP_POLICIES, merge_box_masks,
                                                     overlap_scores)
from vertspine.layers.engines import InferenceEngine, build_engine, load_onnx_engine

from .decoding import postprocess_logits
from .export import (BOX_DECODER_SIGNATURE, PROMPT_SEG_ENCODER_SIGNATURE, BoxDecoder,
                     example_inputs, read_export_manifest)
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
    return {"expand": float(node.EXPAND), "min_iou": float(node.MIN_IOU),
            "on_collapse": node.ON_COLLAPSE, "within_prompt": bool(node.WITHIN_PROMPT),
            "overlap": overlap}


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
                 overlap: str = "iou",
                 device: torch.device = torch.device("cpu")):
        """
        Args:
            encoder: ``images`` [N, 3, S, S] -> ([N, 256, E, E],).
            decoder: ``(embeddings [1, 256, E, E], boxes [B, 4] S x S frame)`` ->
                ([B, 4E, 4E] logits, [B] predicted IoU) (:class:`.export.BoxDecoder`).
            image_size: S in px.
            box_chunk: boxes per decoder call.
            batch_slices: 3D slices per encoder call.
            overlap: where masks overlap, "iou" (higher predicted IoU) or "smaller" wins.
            expand, min_iou, on_collapse, within_prompt: 3D propagation
                (:func:`.propagation.propagate_boxes`).
            device: where inputs are put (a torch engine's model device; exported engines run
                on the CPU and take inputs from anywhere).
        """
        if box_chunk < 1 or batch_slices < 1:
            raise ValueError(f"box_chunk ({box_chunk}) and batch_slices ({batch_slices}) must "
                             "be >= 1.")
        self.encoder, self.decoder, self.image_size = encoder, decoder, int(image_size)
        self.box_chunk, self.batch_slices = int(box_chunk), int(batch_slices)
        self.device = torch.device(device)
        self.overlap = overlap
        self.propagation = {"expand": expand, "min_iou": min_iou, "on_collapse": on_collapse,
                            "within_prompt": within_prompt}

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
        examples = example_inputs(model.image_size, embedding.shape[-1], embedding.shape[1])
        parts = ((model.image_encoder, "encoder", PROMPT_SEG_ENCODER_SIGNATURE),
                 (BoxDecoder(model.prompt_encoder, model.mask_decoder), "decoder",
                  BOX_DECODER_SIGNATURE))
        encoder, decoder = (build_engine(kind, module, examples[part], signature,
                                         cache_dir=cache_dir, threads=threads)
                            for module, part, signature in parts)
        kwargs.setdefault("box_chunk", model.box_chunk)
        return cls(encoder, decoder, image_size=model.image_size, device=model.device, **kwargs)

    @classmethod
    def from_export(cls, folder: str, kind: str, *, threads: int = 0,
                    **kwargs) -> "BoxPromptPredictor":
        """Engines of the files :func:`.export.export_prompt_seg` wrote into ``folder``."""
        manifest = read_export_manifest(folder)
        encoder = load_onnx_engine(kind, manifest["paths"]["encoder"],
                                   PROMPT_SEG_ENCODER_SIGNATURE, threads=threads)
        decoder = load_onnx_engine(kind, manifest["paths"]["decoder"], BOX_DECODER_SIGNATURE,
                                   threads=threads)
        return cls(encoder, decoder, image_size=manifest["image_size"], **kwargs)

    @property
    def kind(self) -> str:
        return self.encoder.kind

    def encode(self, images: Sequence[np.ndarray],
               ct_window: Optional[Sequence[float]] = None) -> Tensor:
        """[N, 256, E, E] embeddings of N images ([H, W] or [H, W, 3], original values)."""
        batch = np.stack([preprocess_image(image, self.image_size, ct_window)[0]
                          for image in images])
        return self.encoder(torch.from_numpy(batch).to(self.device))[0]

    def decode(self, embedding: Tensor, boxes: np.ndarray,
               original_size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """Masks and predicted IoU of boxes on one image.

        Args:
            embedding: [1, 256, E, E] of the image.
            boxes: [B, 4] XYXY inclusive pixel indices of the original image (float).
            original_size: (H, W) of the original image.
        Returns:
            (bool [B, H, W] masks, float32 [B] predicted IoU).
        """
        height, width = original_size
        resized = resized_shape(height, width, self.image_size)
        scaled = torch.from_numpy(scale_boxes(boxes, height, width, self.image_size)).to(
            self.device, torch.float32)
        masks, ious = [], []
        for start in range(0, len(scaled), self.box_chunk):
            logits, iou = self.decoder(embedding, scaled[start:start + self.box_chunk])
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
            segs = merge_box_masks(masks, overlap_scores(masks, ious, self.overlap),
                                   np.arange(1, len(masks) + 1))
            return CasePrediction(segs, encoder_calls=1)
        calls = []
        depth, height, width = case.spatial_shape

        def embed(slices: np.ndarray):
            calls.append(len(slices))
            return self.encode(list(slices), ct_window).split(1)

        segmenter = SliceSegmenter(
            embed=embed, decode=lambda embedding, boxes: self.decode(embedding, boxes,
                                                                     (height, width)))
        segs, _, report = propagate_boxes(case.imgs, case.boxes, segmenter,
                                          batch_slices=self.batch_slices, overlap=self.overlap,
                                          **self.propagation)
        return CasePrediction(segs, encoder_calls=sum(calls),
                              distinct_slices=report.distinct_slices)
