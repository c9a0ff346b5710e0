"""VertFound (Wu et al., MICCAI 2024): vertebra-level identification of given boxes with SAM and
CLIP, registered as ``MODEL.META_ARCHITECTURE "VertFound"``.

For every box of an image: SAM (prompted with the box) gives its mask token; CLIP's visual tower
gives multi-layer image tokens; :class:`VertebraFusion` turns both into one feature per box in
CLIP's text space, scored against the text embeddings of the level names. Training losses:
focal, optimal-transport alignment, ordering (:mod:`.loss`). Inference: per-level sigmoid scores
(those the focal loss trains), then a monotone Viterbi over the boxes sorted top to bottom
(:mod:`.decoding`), or argmax.

Module names: ``sam`` (segment_anything ``Sam``), ``clip`` (open_clip ``CLIP``), ``fusion``
(with ``fusion.sam_proj``, VertFound's ``to_clip``), ``text`` (kept class embeddings, no
parameters), ``logit_scale_log`` and ``class_bias``.
"""
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances
from torch import Tensor, nn

from .box_sources import BOX_SOURCES
from .cache import EmbeddingCache, compare_identity
from .clip_encoder import ClipImageTokens, text_embedding_dim
from .decoding import decode_levels, top_to_bottom
from .fusion import VertebraFusion
from .identity import embedding_identity
from .loss import OT_TARGETS, focal_loss, ordering_loss, ot_alignment_loss
from .model_builder import vertfound_parts_from_config
from .sam_encoder import SamBoxEncoder
from .text import LevelTextClassifier

__all__ = ["VertFound"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class VertFound(nn.Module):
    """SAM box tokens + CLIP image tokens -> fusion -> level logits against text embeddings."""

    @configurable
    def __init__(self, *, sam: nn.Module, clip: nn.Module, tokenizer, class_names: Sequence[str],
                 clip_layers: Sequence[int] = (-1,), clip_resize: str = "pad",
                 templates: Sequence[str] = ("{}",), expand_names: bool = True,
                 freeze_sam: bool = True, freeze_clip_image: bool = True,
                 freeze_clip_text: bool = True, fusion_heads: int = 8, fusion_ffn_dim: int = 0,
                 fusion_dropout: float = 0.1, self_attention: bool = True,
                 box_position: bool = True, logit_scale: float = 100.0,
                 learn_logit_scale: bool = False, class_prior_prob: float = 0.0,
                 loss_weights: Optional[Dict[str, float]] = None, focal_alpha: float = 0.25,
                 focal_gamma: float = 2.0, ot_epsilon: float = 0.05, ot_iters: int = 1000,
                 ot_tolerance: float = 1e-2, ot_target: str = "sets",
                 order_mode: str = "gt_step", order_margin: float = 1.0, viterbi: bool = True,
                 gap_penalty: float = 2.0, test_flip: bool = False, box_source: str = "gt",
                 detections: Optional[Dict[Any, Tuple[Tensor, Tensor]]] = None,
                 cache: Optional[EmbeddingCache] = None, use_cached_clip: bool = True,
                 input_format: str = "RGB", box_chunk: int = 64, sam_roi_size: int = 0,
                 sam_roi_context: float = 2.0, sam_roi_shifts: Sequence[float] = (),
                 sam_engine: str = "torch",
                 sam_engine_cache_dir: str = "",
                 sources: Optional[Dict[str, str]] = None):
        """
        Args:
            sam: a segment_anything ``Sam`` (official or tiny).
            clip: an open_clip ``CLIP`` with a ``VisionTransformer`` visual tower.
            tokenizer: CLIP's tokenizer (list of str -> int64 [n, ctx]).
            class_names: K level names in contiguous-id order.
            clip_layers: visual blocks whose tokens are fused (one fusion block each).
            clip_resize: "pad" or "stretch" (see :class:`ClipImageTokens`).
            templates, expand_names: prompts of the text classifier.
            freeze_sam, freeze_clip_image, freeze_clip_text: parts kept frozen (eval mode).
            fusion_heads, fusion_ffn_dim, fusion_dropout, self_attention, box_position: see
                :class:`VertebraFusion`.
            logit_scale: initial multiplier of the cosine similarities.
            learn_logit_scale: learn it (as ``logit_scale_log``).
            class_prior_prob: > 0 adds a learnable bias starting at logit(prior).
            loss_weights: {"loss_focal", "loss_ot", "loss_order"} -> weight (0 skips a loss).
            focal_alpha, focal_gamma, ot_epsilon, ot_iters, ot_tolerance, ot_target,
                order_mode, order_margin: losses (see :mod:`.loss`).
            viterbi, gap_penalty: decoding (see :func:`monotone_viterbi`).
            test_flip: at inference, average each box's level logits over the image and its
                horizontal mirror (the box mirrored with it) before decoding.
            box_source: "gt" or "detections" (inference boxes; training always uses gt).
            detections: image_id -> (boxes XYXY original pixels, scores), for "detections".
            cache: embedding cache used in training.
            use_cached_clip: take CLIP tokens from the cache when it holds them (off with
                photometric augmentation).
            input_format: "RGB" or "BGR", the channel order of ``image`` inputs.
            box_chunk: boxes per SAM mask-decoder call.
            sam_roi_size, sam_roi_context, sam_roi_shifts: optional RoIAlign features of SAM's
                image embedding per box (see :class:`SamBoxEncoder`; 0 = off, as in VertFound).
            sam_engine, sam_engine_cache_dir: what runs the frozen SAM image encoder
                ("torch", "onnxruntime", "openvino") and where exported files are kept.
            sources: where the SAM/CLIP weights came from, for cache identities
                ({"sam_model_type", "sam_checkpoint", "sam_seed", "clip_model",
                "clip_pretrained", "clip_seed"}).
        """
        super().__init__()
        if box_source not in BOX_SOURCES:
            raise ValueError(f"MODEL.VERTFOUND.BOX_SOURCE is {box_source!r}; use {BOX_SOURCES}.")
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT is {input_format!r}; VertFound needs 'RGB' or 'BGR'.")
        if cache is not None and not freeze_sam:
            raise ValueError("MODEL.VERTFOUND.CACHE.PATH needs a frozen SAM "
                             "(MODEL.VERTFOUND.SAM.FROZEN True): cached tokens cannot train it.")
        self.sam, self.clip = sam, clip
        if sam_engine != "torch" and not freeze_sam:
            raise ValueError(f"MODEL.VERTFOUND.SAM.ENGINE '{sam_engine}' runs an exported, frozen "
                             "encoder: set MODEL.VERTFOUND.SAM.FROZEN True or ENGINE 'torch'.")
        self.sam_encoder = SamBoxEncoder(sam, box_chunk, sam_roi_size, sam_roi_context,
                                         sam_roi_shifts, engine=sam_engine,
                                         engine_cache_dir=sam_engine_cache_dir)
        self.clip_encoder = ClipImageTokens(clip.visual, clip_layers, clip_resize)
        self.text = LevelTextClassifier(clip.encode_text, tokenizer, class_names, templates,
                                        expand_names, trainable=not freeze_clip_text)
        text_dim = text_embedding_dim(clip)
        self.fusion = VertebraFusion(
            sam_dim=self.sam_encoder.token_dim, clip_width=self.clip_encoder.width,
            num_layers=len(self.clip_encoder.layers), text_dim=text_dim, num_heads=fusion_heads,
            ffn_dim=fusion_ffn_dim, dropout=fusion_dropout, self_attention=self_attention,
            box_position=box_position, roi_dim=self.sam_encoder.roi_dim)
        scale_log = torch.tensor(math.log(logit_scale))
        if learn_logit_scale:
            self.logit_scale_log = nn.Parameter(scale_log)
        else:
            self.register_buffer("logit_scale_log", scale_log)
        self.class_bias = None
        if class_prior_prob > 0:
            prior = -math.log((1 - class_prior_prob) / class_prior_prob)
            self.class_bias = nn.Parameter(torch.tensor(prior))
        self.num_classes = len(class_names)
        self.freeze = {"sam": freeze_sam, "clip_image": freeze_clip_image,
                       "clip_text": freeze_clip_text}
        self._freeze_parameters()
        self.loss_weights = dict(loss_weights or {"loss_focal": 1.0, "loss_ot": 1.0,
                                                  "loss_order": 0.1})
        self.focal = (focal_alpha, focal_gamma)
        if ot_target not in OT_TARGETS:
            raise ValueError(f"MODEL.VERTFOUND.LOSS.OT_TARGET is {ot_target!r}; use one of "
                             f"{OT_TARGETS}.")
        self.ot = (ot_epsilon, ot_iters, ot_tolerance, ot_target)
        self.order = (order_mode, order_margin)
        self.viterbi, self.gap_penalty, self.test_flip = viterbi, gap_penalty, test_flip
        self.box_source, self.detections = box_source, detections or {}
        self.cache, self._cache_checked, self._warned_missing = cache, False, False
        self.use_cached_clip = bool(use_cached_clip and cache is not None and cache.has_clip
                                    and freeze_clip_image)
        self.input_format = input_format
        self.sources = dict(sources or {})
        self.register_buffer("_device_anchor", torch.zeros(0), False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.text.mark_stale())

    @classmethod
    def from_config(cls, cfg) -> Dict[str, Any]:
        return vertfound_parts_from_config(cfg)

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    def _freeze_parameters(self) -> None:
        """requires_grad off for frozen parts and for parameters the outputs never use."""
        text_modules = [self.clip.transformer, self.clip.token_embedding, self.clip.ln_final]
        frozen = list(self.sam_encoder.unused_parameters())
        frozen += list(self.clip_encoder.unused_parameters())
        frozen += [p for name, p in self.clip.named_parameters() if name.startswith("logit_")]
        if self.freeze["sam"]:
            frozen += list(self.sam.parameters())
        if self.freeze["clip_image"]:
            frozen += list(self.clip.visual.parameters())
        if self.freeze["clip_text"]:
            frozen += [p for m in text_modules for p in m.parameters()]
            frozen += [p for p in (self.clip.positional_embedding, self.clip.text_projection)
                       if isinstance(p, nn.Parameter)]
            if isinstance(self.clip.text_projection, nn.Module):
                frozen += list(self.clip.text_projection.parameters())
        for p in frozen:
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> "VertFound":
        """Set the mode; frozen parts always stay in eval mode."""
        super().train(mode)
        if self.freeze["sam"]:
            self.sam.eval()
        if self.freeze["clip_image"]:
            self.clip.visual.eval()
        if self.freeze["clip_text"]:
            self.clip.transformer.eval()
        return self

    def embedding_identity(self, include_clip: bool) -> Dict[str, Any]:
        """What cached tokens must have been made with (see :mod:`.identity`)."""
        return embedding_identity(self, include_clip)

    # ----------------------------------------------------------------------------- forward
    def forward(self, batched_inputs: List[Dict[str, Any]]):
        """
        Args:
            batched_inputs: :class:`VertFoundDatasetMapper` outputs: ``image`` [3, H, W]
                (``input_format``), ``instances`` with ``gt_boxes`` (XYXY pixels of ``image``),
                ``gt_classes``, ``gt_indices``, ``gt_ann_ids``; ``height``/``width`` (original
                size), ``image_id``, ``file_name``.
        Returns:
            Training: {"loss_focal", "loss_ot", "loss_order"} (weighted). Inference: per image
            ``{"instances": Instances}`` in original image pixels with ``pred_boxes``,
            ``pred_classes`` (int64 levels), ``scores`` (sigmoid probability of the chosen level),
            ``level_probs`` [N, K] (sigmoid probabilities, not summing to 1) and ``gt_indices``
            (int64; -1 for detection boxes).
        """
        images = [self._rgb(x["image"]) for x in batched_inputs]
        boxes, gt_indices = self._boxes(batched_inputs, images)
        entries = self._cache_entries(batched_inputs)
        sam_tokens = self._sam_tokens(batched_inputs, images, boxes, entries)
        clip_tokens = self._clip_tokens(images, entries)
        logits, features, text, valid = self._logits(sam_tokens, clip_tokens, boxes, images)
        if self.training:
            labels = [x["instances"].gt_classes.to(self.device) for x in batched_inputs]
            return self.losses(logits, features, text, valid, boxes, labels)
        if self.test_flip:
            logits = (logits + self._mirrored_logits(batched_inputs, images, boxes, entries)) / 2
        return [{"instances": self._inference(x, image, b, lg[: len(b)], idx)}
                for x, image, b, lg, idx in zip(batched_inputs, images, boxes, logits, gt_indices)]

    def _mirrored_logits(self, batched_inputs, images, boxes, entries) -> Tensor:
        """Padded logits [B, N, K] of the horizontally mirrored images and boxes (same box
        order): x -> W - x, so XYXY (x0, y0, x1, y1) -> (W - x1, y0, W - x0, y1)."""
        mirrored_images = [image.flip(-1) for image in images]
        mirrored_boxes = [torch.stack([image.shape[-1] - b[:, 2], b[:, 1],
                                       image.shape[-1] - b[:, 0], b[:, 3]], dim=1)
                          for image, b in zip(images, boxes)]
        sam_tokens = self._sam_tokens(batched_inputs, mirrored_images, mirrored_boxes, entries)
        clip_tokens = self._clip_tokens(mirrored_images, entries)
        return self._logits(sam_tokens, clip_tokens, mirrored_boxes, mirrored_images)[0]

    def _rgb(self, image: Tensor) -> Tensor:
        image = image.to(self.device)
        if image.shape[0] != 3:
            raise ValueError(f"VertFound needs 3-channel images, got {tuple(image.shape)}.")
        return image.flip(0) if self.input_format == "BGR" else image

    def _boxes(self, batched_inputs, images) -> Tuple[List[Tensor], List[Tensor]]:
        """Boxes [N_i, 4] XYXY in input-image pixels and their gt indices (-1: detections)."""
        boxes, indices = [], []
        for x, image in zip(batched_inputs, images):
            if self.training or self.box_source == "gt":
                if "instances" not in x:
                    raise ValueError("VertFound needs ground-truth boxes ('instances'); use "
                                     "INPUT.DATASET_MAPPER VertFoundDatasetMapper.")
                boxes.append(x["instances"].gt_boxes.tensor.to(self.device, torch.float32))
                indices.append(x["instances"].gt_indices.to(self.device))
                continue
            found = self.detections.get(x["image_id"])
            dets = found[0] if found is not None else torch.zeros((0, 4))
            height, width = image.shape[-2:]
            scale = torch.tensor([width / x.get("width", width), height / x.get("height", height)]
                                 * 2)
            boxes.append((dets * scale).to(self.device))
            indices.append(torch.full((len(dets),), -1, dtype=torch.long, device=self.device))
        return boxes, indices

    def _check_cache(self) -> None:
        if not self._cache_checked:
            parts = ("sam", "clip") if self.use_cached_clip else ("sam",)
            compare_identity(self.embedding_identity(self.use_cached_clip), self.cache.identity,
                             self.cache.path, parts)
            self._cache_checked = True

    def _cache_entries(self, batched_inputs) -> List[Optional[Dict[str, Any]]]:
        if self.cache is None or not self.training:
            return [None] * len(batched_inputs)
        self._check_cache()
        entries = [self.cache.lookup(x.get("image_id"), x.get("file_name", "")) for x in
                   batched_inputs]
        if any(e is None for e in entries) and not self._warned_missing:
            self._warned_missing = True
            logger.warning("Some images (first: %s) are not in the cache %s; their tokens are "
                           "computed online (warned once).", next(
                               x.get("file_name") for x, e in zip(batched_inputs, entries)
                               if e is None), self.cache.path)
        return entries

    def _sam_tokens(self, batched_inputs, images, boxes, entries) -> List[Tensor]:
        """Per image [N_i, C] box features: cached in training when available, else SAM."""
        tokens: List[Optional[Tensor]] = [None] * len(images)
        for i, (x, entry, image) in enumerate(zip(batched_inputs, entries, images)):
            if entry is not None:
                height, width = image.shape[-2:]
                scale = torch.tensor([x["width"] / width, x["height"] / height] * 2,
                                     device=self.device)
                keys = x["instances"].gt_ann_ids.tolist()
                tokens[i] = self.cache.sam_tokens(entry, keys, boxes[i] * scale).to(self.device)
        todo = [i for i, t in enumerate(tokens) if t is None]
        if todo:
            grad = self.training and not self.freeze["sam"]
            with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                online = self.sam_encoder([images[i] for i in todo], [boxes[i] for i in todo])
            for i, t in zip(todo, online):
                tokens[i] = t
        return tokens

    def _clip_tokens(self, images, entries) -> Tensor:
        """[B, L, T, W] CLIP tokens: cached when every image has them, else computed."""
        if self.use_cached_clip and self.training:
            if all(e is not None and "clip_tokens" in e for e in entries):
                return torch.stack([e["clip_tokens"].float() for e in entries]).to(self.device)
        grad = self.training and not self.freeze["clip_image"]
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return self.clip_encoder(self.clip_encoder.preprocess(images))

    def _logits(self, sam_tokens, clip_tokens, boxes, images) -> Tuple[Tensor, ...]:
        """Padded logits [B, N, K], box features [B, N, D], class embeddings [K, D] and the
        valid mask [B, N]."""
        count = max([len(b) for b in boxes] + [1])
        batch = len(boxes)
        dim = self.sam_encoder.feature_dim
        padded = sam_tokens[0].new_zeros((batch, count, dim))
        geometry = padded.new_zeros((batch, count, 4))
        valid = torch.zeros((batch, count), dtype=torch.bool, device=self.device)
        for i, (tok, b, image) in enumerate(zip(sam_tokens, boxes, images)):
            n = len(b)
            padded[i, :n] = tok
            height, width = image.shape[-2:]
            geometry[i, :n] = b / b.new_tensor([width, height, width, height])
            valid[i, :n] = True
        features = self.fusion(padded, clip_tokens.to(padded.dtype), valid, geometry)
        text = self.text().to(features.dtype)
        logits = self.logit_scale_log.exp() * nn.functional.normalize(features, dim=-1) @ text.t()
        if self.class_bias is not None:
            logits = logits + self.class_bias
        return logits, features, text, valid

    def losses(self, logits, features, text, valid, boxes, labels) -> Dict[str, Tensor]:
        """Weighted training losses (see :mod:`.loss`); padded labels are 0 and masked."""
        padded = torch.zeros(valid.shape, dtype=torch.long, device=self.device)
        centers = torch.zeros(valid.shape, device=self.device)
        for i, (lab, b) in enumerate(zip(labels, boxes)):
            padded[i, : len(lab)] = lab
            centers[i, : len(b)] = (b[:, 1] + b[:, 3]) / 2
        if (padded[valid] >= self.num_classes).any() or (padded[valid] < 0).any():
            raise ValueError(f"A gt_classes value is outside 0..{self.num_classes - 1}; check "
                             "MODEL.VERTFOUND.NUM_CLASSES against the dataset.")
        losses = {
            "loss_focal": lambda: focal_loss(logits, padded, valid, *self.focal),
            "loss_ot": lambda: ot_alignment_loss(features, text, padded, valid, *self.ot),
            "loss_order": lambda: ordering_loss(logits, centers, valid, padded, *self.order),
        }
        return {name: fn() * self.loss_weights.get(name, 0.0) for name, fn in losses.items()
                if self.loss_weights.get(name, 0.0) > 0}

    def _inference(self, x, image, boxes, logits, gt_indices) -> Instances:
        """Levels of one image's boxes, in original image pixels, sorted top to bottom."""
        order = top_to_bottom(boxes)
        sorted_levels, scores, probs = decode_levels(logits[order], self.viterbi, self.gap_penalty)
        height, width = image.shape[-2:]
        out_h, out_w = x.get("height", height), x.get("width", width)
        result = Instances((out_h, out_w))
        pred = Boxes(boxes[order].clone())
        pred.scale(out_w / width, out_h / height)
        pred.clip((out_h, out_w))
        result.pred_boxes = pred
        result.pred_classes = sorted_levels.to(torch.int64)
        result.scores = scores
        result.level_probs = probs
        result.gt_indices = gt_indices[order].to(torch.int64)
        return result

