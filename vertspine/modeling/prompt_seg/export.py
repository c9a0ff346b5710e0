"""A :class:`PromptSegmentor` as two frozen graphs, and their export to ONNX and OpenVINO.

- the image encoder: ``images`` [N, 3, S, S] (preprocessed) -> ``image_embeddings``
  [N, 256, E, E], N dynamic (:data:`PROMPT_SEG_ENCODER_SIGNATURE`);
- the prompt encoder + mask decoder (:class:`BoxDecoder`): ``image_embeddings`` [1, 256, E, E]
  (one image) and ``boxes`` [B, 4] (XYXY, the S x S frame, float) -> ``mask_logits``
  [B, 4E, 4E] and ``iou_predictions`` [B], B dynamic (:data:`BOX_DECODER_SIGNATURE`); a model
  with mask prompts (``MODEL.PROMPT_SEG.MASK_PROMPT``) takes ``mask_prompts`` [B, S, S] (0/1,
  the S x S frame) and ``has_mask_prompt`` [B] (float, 1 where the row is a prompt) too
  (:data:`MASK_BOX_DECODER_SIGNATURE`).

:func:`export_prompt_seg` writes both as ONNX (and, on request, OpenVINO IR next to them) into
a folder with a manifest ``prompt_seg_export.json`` that
:class:`.predictor.BoxPromptPredictor` reads (``from_export``).
"""
import json
import os
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from vertspine.layers.engines import GraphSignature, convert_to_openvino, export_onnx
from vertspine.utils.file_io import write_json

from .decoding import decode_boxes

__all__ = ["BOX_DECODER_SIGNATURE", "BoxDecoder", "EXPORT_MANIFEST", "MASK_BOX_DECODER_SIGNATURE",
           "PROMPT_SEG_ENCODER_SIGNATURE", "decoder_signature", "export_prompt_seg",
           "read_export_manifest"]

EXPORT_MANIFEST = "prompt_seg_export.json"
PROMPT_SEG_ENCODER_SIGNATURE = GraphSignature(
    inputs=("images",), outputs=("image_embeddings",), dynamic_axes={"images": {0: "batch"}})
BOX_DECODER_SIGNATURE = GraphSignature(
    inputs=("image_embeddings", "boxes"), outputs=("mask_logits", "iou_predictions"),
    dynamic_axes={"boxes": {0: "boxes"}})
MASK_BOX_DECODER_SIGNATURE = GraphSignature(
    inputs=("image_embeddings", "boxes", "mask_prompts", "has_mask_prompt"),
    outputs=("mask_logits", "iou_predictions"),
    dynamic_axes={"boxes": {0: "boxes"}, "mask_prompts": {0: "boxes"},
                  "has_mask_prompt": {0: "boxes"}})
_FILES = {"encoder": "image_encoder.onnx", "decoder": "box_decoder.onnx"}


class BoxDecoder(nn.Module):
    """SAM's prompt encoder + mask decoder on the boxes of one image (any number, one batch),
    each box with an optional mask prompt."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module):
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def forward(self, image_embeddings: Tensor, boxes: Tensor,
                mask_prompts: Optional[Tensor] = None, has_mask_prompt: Optional[Tensor] = None):
        """[1, 256, E, E], [B, 4] (, [B, S, S] 0/1, [B] float 0/1) -> ([B, 4E, 4E] logits, [B]
        predicted IoU)."""
        index = torch.zeros_like(boxes[:, 0], dtype=torch.long)
        flags = None if has_mask_prompt is None else has_mask_prompt > 0.5
        return decode_boxes(self.prompt_encoder, self.mask_decoder, image_embeddings, boxes, index,
                            mask_prompts, flags)


def decoder_signature(mask_prompt: bool) -> GraphSignature:
    """The box decoder's graph signature, with or without mask prompts."""
    return MASK_BOX_DECODER_SIGNATURE if mask_prompt else BOX_DECODER_SIGNATURE


def example_inputs(image_size: int, embedding_size: int, embed_dim: int = 256,
                   mask_prompt: bool = False) -> Dict:
    """Export examples (sizes >= 2 on the dynamic axes): {"encoder": (images,),
    "decoder": (embeddings, boxes[, mask_prompts, has_mask_prompt])}."""
    side = float(image_size - 1)
    boxes = torch.tensor([[0.0, 0.0, side / 2, side / 2], [side / 4, side / 4, side, side]])
    decoder = (torch.rand(1, embed_dim, embedding_size, embedding_size), boxes)
    if mask_prompt:
        decoder += ((torch.rand(2, image_size, image_size) > 0.5).float(), torch.tensor([1.0, 0.0]))
    return {"encoder": (torch.rand(2, 3, image_size, image_size),), "decoder": decoder}


def export_prompt_seg(model: nn.Module, folder: str, *, openvino: bool = True,
                      extra: Optional[Dict] = None) -> Dict:
    """Export a :class:`PromptSegmentor`'s two graphs into ``folder``.

    Args:
        model: the segmenter (on any device; exported from the CPU in eval mode).
        folder: created if absent; gets ``image_encoder.onnx``, ``box_decoder.onnx``, with
            ``openvino`` their ``.xml``/``.bin`` IR, and the manifest.
        openvino: also convert both to OpenVINO IR (float32).
        extra: more manifest entries (e.g. the config and weights they came from).
    Returns:
        the manifest: {"image_size": S, "embedding_size": E, "files": {part: file name},
        "mask_prompt": whether the decoder takes mask prompts, ...}.
    """
    model = model.to("cpu").eval()
    with torch.no_grad():
        embedding = model.image_encoder(torch.zeros(1, 3, model.image_size, model.image_size))
    mask_prompt = bool(getattr(model, "mask_prompt", False))
    examples = example_inputs(model.image_size, embedding.shape[-1], embedding.shape[1],
                              mask_prompt)
    modules = {"encoder": model.image_encoder,
               "decoder": BoxDecoder(model.prompt_encoder, model.mask_decoder)}
    signatures = {"encoder": PROMPT_SEG_ENCODER_SIGNATURE,
                  "decoder": decoder_signature(mask_prompt)}
    os.makedirs(folder, exist_ok=True)
    files = {}
    for part, name in _FILES.items():
        path = export_onnx(modules[part], examples[part], os.path.join(folder, name),
                           signatures[part])
        if openvino:
            convert_to_openvino(path)
        files[part] = name
    manifest = {"image_size": model.image_size, "embedding_size": int(embedding.shape[-1]),
                "files": files, "openvino": openvino, "mask_prompt": mask_prompt,
                **(extra or {})}
    write_json(os.path.join(folder, EXPORT_MANIFEST), manifest)
    return manifest


def read_export_manifest(folder: str, parts: Sequence[str] = tuple(_FILES)) -> Dict:
    """The manifest of an export folder, with ``paths`` {part: absolute ONNX path} checked.

    Raises:
        FileNotFoundError: no manifest or a missing ONNX file (the message says how to export).
    """
    manifest_path = os.path.join(folder, EXPORT_MANIFEST)
    if not os.path.isfile(manifest_path):
        raise FileNotFoundError(f"{folder} is not a prompt_seg export folder (no "
                                f"{EXPORT_MANIFEST}); write one with tools/export_prompt_seg.py.")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    manifest["paths"] = {part: os.path.join(os.path.abspath(folder), manifest["files"][part])
                         for part in parts}
    for path in manifest["paths"].values():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} (listed in {manifest_path}) is missing; export "
                                    "again with tools/export_prompt_seg.py.")
    return manifest
