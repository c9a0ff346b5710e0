"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): the ``PromptSegmentor`` meta-architecture.

An image encoder from :data:`PROMPT_SEG_ENCODER_REGISTRY` (``MODEL.PROMPT_SEG.ENCODER``) and
segment_anything's ``PromptEncoder`` and ``MaskDecoder`` (embed dim 256, TwoWayTransformer
depth 2 / MLP 2048 / 8 heads, 3 multimask outputs + 1, IoU head depth 3), used with
``multimask_output=False``. Parameters are named as the originals (``image_encoder.*``,
``prompt_encoder.*``, ``mask_decoder.*``), so ``medsam_vit_b.pth`` (encoder ``sam_vit_b``) and
``lite_medsam.pth`` (``tiny_vit``) load through ``MODEL.WEIGHTS`` as they are, and
:func:`.checkpoint.load_prompt_seg_checkpoint` loads them with a report.

Input (the "PromptSegMapper" dicts): ``image`` float [3, S, S] preprocessed (min-max [0, 1],
padded bottom/right), ``boxes`` float [B, 4] XYXY in the S x S frame (B >= 0, any B per image),
in training ``gt_masks`` [B, S, S] 0/1; at inference ``height``, ``width`` (original size) and
``resized_size`` (h, w) before padding (computed from height/width when absent).

Training: the boxes of all images are decoded in one batch (:func:`.decoding.decode_boxes`);
the 4E x 4E logits are upsampled to S (a no-op for LiteMedSAM/DAFT, whose 64 x 64 embedding
gives 256 x 256 = S logits, which LiteMedSAM compares with its 256 x 256 GT; MedSAM's 256 x 256
logits go up to 1024 as MedSAM's training does) and compared with ``gt_masks``
(:class:`.loss.PromptSegLoss`). Inference output per input: ``{"prompt_seg": {"masks": bool
[B, height, width], "mask_logits": float [B, height, width], "iou_predictions": float [B]}}``,
the logits upsampled to S, cropped to ``resized_size`` and resized bilinearly to the original.

Frozen: the prompt encoder with ``freeze_prompt_encoder``; always the parts box prompts with
``multimask_output=False`` never use (point and not-a-point embeddings, mask downscaling, the
hypernetwork MLPs of mask tokens 1-3), so distributed training sees no unused trainable
parameter. They stay in the state dict.
"""
from typing import Dict, List, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import Tensor, nn

from vertspine.layers.sam import build_sam_mask_decoder, build_sam_prompt_encoder, resized_shape

from .decoding import decode_boxes, postprocess_logits, upsample_logits
from .loss import PromptSegLoss
from .registry import PROMPT_SEG_ENCODER_REGISTRY

__all__ = ["PromptSegmentor", "build_prompt_seg_encoder"]


def build_prompt_seg_encoder(cfg):
    """The :class:`PromptSegEncoder` named by ``MODEL.PROMPT_SEG.ENCODER``, checked against
    ``INPUT.PROMPT_SEG.IMAGE_SIZE``."""
    name = cfg.MODEL.PROMPT_SEG.ENCODER
    if name not in PROMPT_SEG_ENCODER_REGISTRY:
        raise ValueError(f"MODEL.PROMPT_SEG.ENCODER {name!r} is not a registered encoder; use one "
                         f"of {sorted(k for k, _ in PROMPT_SEG_ENCODER_REGISTRY)}.")
    encoder = PROMPT_SEG_ENCODER_REGISTRY.get(name)(cfg)
    if encoder.input_size != cfg.INPUT.PROMPT_SEG.IMAGE_SIZE:
        raise ValueError(f"MODEL.PROMPT_SEG.ENCODER {name!r} takes {encoder.input_size} px inputs, "
                         f"INPUT.PROMPT_SEG.IMAGE_SIZE is {cfg.INPUT.PROMPT_SEG.IMAGE_SIZE}.")
    return encoder


@META_ARCH_REGISTRY.register()
class PromptSegmentor(nn.Module):
    """Image encoder + SAM prompt encoder and mask decoder, prompted with boxes."""

    @configurable
    def __init__(self, *, image_encoder: nn.Module, prompt_encoder: nn.Module,
                 mask_decoder: nn.Module, image_size: int, loss: nn.Module,
                 freeze_prompt_encoder: bool = False, box_chunk: int = 16):
        """
        Args:
            image_encoder: [N, 3, S, S] -> [N, 256, E, E].
            prompt_encoder: segment_anything ``PromptEncoder`` for (S, S) inputs, E x E grid.
            mask_decoder: segment_anything ``MaskDecoder``.
            image_size: S, the model's square input side in pixels.
            loss: ``loss(logits [M, S, S], gt [M, S, S], iou_pred [M]) -> {name: scalar}``.
            freeze_prompt_encoder: keep the prompt encoder fixed (DAFT's fine-tuning).
            box_chunk: boxes decoded together at inference (memory bound).
        """
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.image_size = int(image_size)
        self.loss = loss
        self.box_chunk = max(1, int(box_chunk))
        unused = [prompt_encoder.point_embeddings[0], prompt_encoder.point_embeddings[1],
                  prompt_encoder.not_a_point_embed, prompt_encoder.mask_downscaling,
                  *mask_decoder.output_hypernetworks_mlps[1:]]
        for module in unused + ([prompt_encoder] if freeze_prompt_encoder else []):
            module.requires_grad_(False)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        node = cfg.MODEL.PROMPT_SEG
        encoder = build_prompt_seg_encoder(cfg)
        return {
            "image_encoder": encoder.module,
            "prompt_encoder": build_sam_prompt_encoder(256, encoder.input_size,
                                                       encoder.embedding_size),
            "mask_decoder": build_sam_mask_decoder("vit_b"),
            "image_size": encoder.input_size,
            "loss": PromptSegLoss(node.DICE_WEIGHT, node.BCE_WEIGHT, node.IOU_WEIGHT),
            "freeze_prompt_encoder": node.FREEZE_PROMPT_ENCODER,
            "box_chunk": node.BOX_CHUNK,
        }

    @property
    def device(self) -> torch.device:
        return self.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.device

    def encode_images(self, images: Tensor) -> Tensor:
        """[N, 3, S, S] preprocessed images -> [N, 256, E, E] image embeddings."""
        return self.image_encoder(images)

    def decode(self, embeddings: Tensor, boxes: Tensor,
               image_index: Tensor) -> Tuple[Tensor, Tensor]:
        """[M, 4E, 4E] mask logits and [M] predicted IoU of boxes [M, 4] (S x S frame) on the
        images ``image_index`` [M] of ``embeddings``; see :func:`.decoding.decode_boxes`."""
        return decode_boxes(self.prompt_encoder, self.mask_decoder, embeddings, boxes, image_index)

    def _inputs(self, batched_inputs: List[Dict]) -> Tuple[Tensor, Tensor, Tensor, List[int]]:
        """Images [N, 3, S, S], boxes [M, 4], image index [M], boxes per image; shapes checked."""
        side = self.image_size
        images, boxes, counts = [], [], []
        for record in batched_inputs:
            image, box = record["image"], torch.as_tensor(record["boxes"])
            where = record.get("file_name", "an input")
            if tuple(image.shape) != (3, side, side):
                raise ValueError(f"{where}: image is {list(image.shape)}, the model takes "
                                 f"[3, {side}, {side}] (INPUT.PROMPT_SEG.IMAGE_SIZE {side}).")
            if box.dim() != 2 or box.shape[1] != 4:
                if box.numel() == 0:
                    box = box.reshape(0, 4)
                else:
                    raise ValueError(f"{where}: boxes are {list(box.shape)}, not [B, 4] XYXY.")
            images.append(image.to(self.device, torch.float32))
            boxes.append(box.to(self.device, torch.float32))
            counts.append(box.shape[0])
        index = torch.repeat_interleave(torch.arange(len(counts), device=self.device),
                                        torch.tensor(counts, device=self.device))
        return torch.stack(images), torch.cat(boxes), index, counts

    def forward(self, batched_inputs: List[Dict]):
        """Training: loss dict; inference: one ``{"prompt_seg": ...}`` per input (module doc)."""
        images, boxes, index, counts = self._inputs(batched_inputs)
        embeddings = self.encode_images(images)
        if self.training:
            return self.losses(embeddings, boxes, index, batched_inputs, counts)
        return self.inference(embeddings, boxes, index, batched_inputs, counts)

    def losses(self, embeddings: Tensor, boxes: Tensor, index: Tensor,
               batched_inputs: List[Dict], counts: List[int]) -> Dict[str, Tensor]:
        """The loss terms over every box of the batch (0, attached to the graph, without boxes)."""
        gt = []
        for record, count in zip(batched_inputs, counts):
            masks = torch.as_tensor(record["gt_masks"])
            if tuple(masks.shape) != (count, self.image_size, self.image_size):
                raise ValueError(f"{record.get('file_name', 'an input')}: gt_masks are "
                                 f"{list(masks.shape)}, expected [{count}, {self.image_size}, "
                                 f"{self.image_size}] (one per box, model frame).")
            gt.append(masks.to(self.device))
        if not boxes.shape[0]:
            zero = embeddings.sum() * 0.0
            return {name: zero for name in ("loss_dice", "loss_bce", "loss_iou")}
        logits, iou = self.decode(embeddings, boxes, index)
        return self.loss(upsample_logits(logits, self.image_size), torch.cat(gt), iou)

    @torch.no_grad()
    def inference(self, embeddings: Tensor, boxes: Tensor, index: Tensor,
                  batched_inputs: List[Dict], counts: List[int]) -> List[Dict]:
        """Masks, logits and IoU of every box on its original image (``box_chunk`` at a time)."""
        chunks = [self.decode(embeddings, boxes[i:i + self.box_chunk], index[i:i + self.box_chunk])
                  for i in range(0, max(len(boxes), 1), self.box_chunk)]
        logits = torch.cat([c[0] for c in chunks]).split(counts)
        ious = torch.cat([c[1] for c in chunks]).split(counts)
        results = []
        for record, image_logits, iou in zip(batched_inputs, logits, ious):
            height = int(record.get("height", self.image_size))
            width = int(record.get("width", self.image_size))
            resized = (record["resized_size"] if "resized_size" in record
                       else resized_shape(height, width, self.image_size))
            out = postprocess_logits(image_logits, self.image_size,
                                     (int(resized[0]), int(resized[1])), (height, width))
            results.append({"prompt_seg": {"masks": out > 0, "mask_logits": out,
                                           "iou_predictions": iou}})
        return results
