"""A :class:`PromptSegmentor` as two frozen graphs, and their export to ONNX and OpenVINO.

- the image encoder: ``images`` [N, 3, S, S] (preprocessed) -> ``image_embeddings``
  [N, 256, E, E], N dynamic (:data:`PROMPT_SEG_ENCODER_SIGNATURE`);
- the prompt encoder + mask decoder (:class:`BoxDecoder`): ``image_embeddings`` [1, 256, E, E]
  (one image) and ``boxes`` [B, 4] (XYXY, the S x S frame, float) -> ``mask_logits``
  [B, 4E, 4E] and ``iou_predictions`` [B], B dynamic (:data:`BOX_DECODER_SIGNATURE`).

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

__all__ = ["BOX_DECODER_SIGNATURE", "BoxDecoder", "EXPORT_MANIFEST",
           "PROMPT_SEG_ENCODER_SIGNATURE", "export_prompt_seg", "read_export_manifest"]

EXPORT_MANIFEST = "prompt_seg_export.json"
PROMPT_SEG_ENCODER_SIGNATURE = GraphSignature(
    inputs=("images",), outputs=("image_embeddings",), dynamic_axes={"images": {0: "batch"}})
BOX_DECODER_SIGNATURE = GraphSignature(
    inputs=("image_embeddings", "boxes"), outputs=("mask_logits", "iou_predictions"),
    dynamic_axes={"boxes": {0: "boxes"}})
_FILES = {"encoder": "image_encoder.onnx", "decoder": "box_decoder.onnx"}


class BoxDecoder(nn.Module):
    """SAM's prompt encoder + mask decoder on the boxes of one image (any number, one batch)."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module):
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def forward(self, image_embeddings: Tensor, boxes: Tensor):
        """[1, 256, E, E], [B, 4] -> ([B, 4E, 4E] logits, [B] predicted IoU)."""
        index = torch.zeros_like(boxes[:, 0], dtype=torch.long)
        return decode_boxes(self.prompt_encoder, self.mask_decoder, image_embeddings, boxes, index)


def example_inputs(image_size: int, embedding_size: int, embed_dim: int = 256) -> Dict:
    """Export examples (sizes >= 2 on the dynamic axes): {"encoder": (images,),
    "decoder": (embeddings, boxes)}."""
    side = float(image_size - 1)
    boxes = torch.tensor([[0.0, 0.0, side / 2, side / 2], [side / 4, side / 4, side, side]])
    return {"encoder": (torch.rand(2, 3, image_size, image_size),),
            "decoder": (torch.rand(1, embed_dim, embedding_size, embedding_size), boxes)}


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
        the manifest: {"image_size": S, "embedding_size": E, "files": {part: file name}, ...}.
    """
    model = model.to("cpu").eval()
    with torch.no_grad():
        embedding = model.image_encoder(torch.zeros(1, 3, model.image_size, model.image_size))
    examples = example_inputs(model.image_size, embedding.shape[-1], embedding.shape[1])
    modules = {"encoder": model.image_encoder,
               "decoder": BoxDecoder(model.prompt_encoder, model.mask_decoder)}
    signatures = {"encoder": PROMPT_SEG_ENCODER_SIGNATURE, "decoder": BOX_DECODER_SIGNATURE}
    os.makedirs(folder, exist_ok=True)
    files = {}
    for part, name in _FILES.items():
        path = export_onnx(modules[part], examples[part], os.path.join(folder, name),
                           signatures[part])
        if openvino:
            convert_to_openvino(path)
        files[part] = name
    manifest = {"image_size": model.image_size, "embedding_size": int(embedding.shape[-1]),
                "files": files, "openvino": openvino, **(extra or {})}
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
