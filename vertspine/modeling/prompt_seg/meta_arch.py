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

Mask prompts (``mask_prompt``, ``MODEL.PROMPT_SEG.MASK_PROMPT``): an input may hold
``mask_prompts`` [B, S, S] 0/1 and ``has_mask_prompt`` [B] bool, SAM's dense prompt for the boxes
that have one (3D propagation gives each slice the previous slice's mask; the mapper draws them
in training from an adjacent slice); inputs without them decode every box without a mask.

Frozen: the prompt encoder with ``freeze_prompt_encoder``; always the parts box prompts with
``multimask_output=False`` never use (point and not-a-point embeddings, the hypernetwork MLPs of
mask tokens 1-3, and mask downscaling unless ``mask_prompt``), so distributed training sees no
unused trainable parameter. They stay in the state dict.
"""
from typing import Dict, List, Optional, Tuple

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
                 freeze_prompt_encoder: bool = False, box_chunk: int = 16,
                 mask_prompt: bool = False):
        """
        Args:
            image_encoder: [N, 3, S, S] -> [N, 256, E, E].
            prompt_encoder: segment_anything ``PromptEncoder`` for (S, S) inputs, E x E grid.
            mask_decoder: segment_anything ``MaskDecoder``.
            image_size: S, the model's square input side in pixels.
            loss: ``loss(logits [M, S, S], gt [M, S, S], iou_pred [M]) -> {name: scalar}``.
            freeze_prompt_encoder: keep the prompt encoder fixed (DAFT's fine-tuning).
            box_chunk: boxes decoded together at inference (memory bound).
            mask_prompt: boxes may come with a mask prompt (module docstring).
        """
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.image_size = int(image_size)
        self.loss = loss
        self.box_chunk = max(1, int(box_chunk))
        self.mask_prompt = bool(mask_prompt)
        unused = [prompt_encoder.point_embeddings[0], prompt_encoder.point_embeddings[1],
                  prompt_encoder.not_a_point_embed, *mask_decoder.output_hypernetworks_mlps[1:],
                  *([] if mask_prompt else [prompt_encoder.mask_downscaling])]
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
            "mask_prompt": node.MASK_PROMPT,
        }

    @property
    def device(self) -> torch.device:
        return self.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.device

    def encode_images(self, images: Tensor) -> Tensor:
        """[N, 3, S, S] preprocessed images -> [N, 256, E, E] image embeddings."""
        return self.image_encoder(images)

    def decode(self, embeddings: Tensor, boxes: Tensor, image_index: Tensor,
               mask_prompts: Optional[Tensor] = None,
               has_mask_prompt: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """[M, 4E, 4E] mask logits and [M] predicted IoU of boxes [M, 4] (S x S frame) on the
        images ``image_index`` [M] of ``embeddings``, with optional mask prompts [M, S, S] and
        flags [M]; see :func:`.decoding.decode_boxes`."""
        return decode_boxes(self.prompt_encoder, self.mask_decoder, embeddings, boxes, image_index,
                            mask_prompts, has_mask_prompt)

    def _mask_prompts(self, record: Dict, count: int) -> Optional[Tuple[Tensor, Tensor]]:
        """A record's mask prompts [B, S, S] float and flags [B] bool (zeros and False when it
        has none); None for a model without mask prompts (which refuses records holding them)."""
        side, where = self.image_size, record.get("file_name", "an input")
        if not self.mask_prompt:
            if "mask_prompts" in record:
                raise ValueError(f"{where} holds mask prompts, but the model was built without "
                                 "MODEL.PROMPT_SEG.MASK_PROMPT (set it, or set "
                                 "INPUT.PROMPT_SEG.MASK_PROMPT_PROB 0).")
            return None
        if "mask_prompts" not in record:
            return (torch.zeros(count, side, side, device=self.device),
                    torch.zeros(count, dtype=torch.bool, device=self.device))
        masks = torch.as_tensor(record["mask_prompts"])
        flags = torch.as_tensor(record["has_mask_prompt"]).reshape(-1).bool()
        if tuple(masks.shape) != (count, side, side) or flags.shape[0] != count:
            raise ValueError(f"{where}: mask_prompts {list(masks.shape)} and has_mask_prompt "
                             f"{list(flags.shape)} must be [{count}, {side}, {side}] and "
                             f"[{count}] (one per box, model frame).")
        return masks.to(self.device, torch.float32), flags.to(self.device)

    def _inputs(self, batched_inputs: List[Dict]) -> Tuple[Tensor, Dict[str, Tensor], List[int]]:
        """Images [N, 3, S, S]; the prompts of all boxes as :meth:`decode` takes them (boxes
        [M, 4], image_index [M], with ``mask_prompt`` mask_prompts [M, S, S] and
        has_mask_prompt [M], else None); boxes per image. Shapes checked."""
        side = self.image_size
        images, boxes, counts, masks = [], [], [], []
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
            masks.append(self._mask_prompts(record, box.shape[0]))
        index = torch.repeat_interleave(torch.arange(len(counts), device=self.device),
                                        torch.tensor(counts, device=self.device))
        prompts = {"boxes": torch.cat(boxes), "image_index": index, "mask_prompts": None,
                   "has_mask_prompt": None}
        if self.mask_prompt:
            prompts.update(mask_prompts=torch.cat([m[0] for m in masks]),
                           has_mask_prompt=torch.cat([m[1] for m in masks]))
        return torch.stack(images), prompts, counts

    def forward(self, batched_inputs: List[Dict]):
        """Training: loss dict; inference: one ``{"prompt_seg": ...}`` per input (module doc)."""
        images, prompts, counts = self._inputs(batched_inputs)
        embeddings = self.encode_images(images)
        if self.training:
            return self.losses(embeddings, prompts, batched_inputs, counts)
        return self.inference(embeddings, prompts, batched_inputs, counts)

    def losses(self, embeddings: Tensor, prompts: Dict[str, Tensor], batched_inputs: List[Dict],
               counts: List[int]) -> Dict[str, Tensor]:
        """The loss terms over every box of the batch (0, attached to the graph, without boxes)."""
        gt = []
        for record, count in zip(batched_inputs, counts):
            masks = torch.as_tensor(record["gt_masks"])
            if tuple(masks.shape) != (count, self.image_size, self.image_size):
                raise ValueError(f"{record.get('file_name', 'an input')}: gt_masks are "
                                 f"{list(masks.shape)}, expected [{count}, {self.image_size}, "
                                 f"{self.image_size}] (one per box, model frame).")
            gt.append(masks.to(self.device))
        if not prompts["boxes"].shape[0]:
            zero = embeddings.sum() * 0.0
            return {name: zero for name in ("loss_dice", "loss_bce", "loss_iou")}
        logits, iou = self.decode(embeddings, **prompts)
        return self.loss(upsample_logits(logits, self.image_size), torch.cat(gt), iou)

    @torch.no_grad()
    def inference(self, embeddings: Tensor, prompts: Dict[str, Tensor],
                  batched_inputs: List[Dict], counts: List[int]) -> List[Dict]:
        """Masks, logits and IoU of every box on its original image (``box_chunk`` at a time)."""
        step = self.box_chunk
        chunks = [self.decode(embeddings, **{key: None if value is None else value[i:i + step]
                                             for key, value in prompts.items()})
                  for i in range(0, max(len(prompts["boxes"]), 1), step)]
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
