"""CLIP from open_clip: multi-layer image tokens and the text tower.

VertFound reads the residual-stream tokens (class token plus patch tokens, before ``ln_post``
and the projection) of several visual transformer blocks. :class:`ClipImageTokens` takes them
with open_clip's ``VisionTransformer.forward_intermediates``; the token count and width come
from the model, so ViT-B/16, ViT-L/14, ViT-L/14-336 and tiny test models all work. open_clip
is imported inside the functions that need it.
"""
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClipImageTokens", "build_clip", "clip_preprocess_description", "text_embedding_dim"]

CLIP_RESIZE_MODES = ("pad", "stretch")
logger = logging.getLogger(__name__)


def build_clip(model_name: str, model_config: Optional[Dict[str, Any]] = None, pretrained: str = "",
               quick_gelu: bool = True, seed: int = 0) -> Tuple[nn.Module, Callable]:
    """An open_clip CLIP model and its tokenizer.

    Args:
        model_name: open_clip model name ("ViT-B-16", "ViT-L-14", "ViT-L-14-336", ...).
        model_config: an open_clip model config dict (``embed_dim``, ``vision_cfg``,
            ``text_cfg``); when not empty it replaces ``model_name`` (tiny test models).
        pretrained: a weights file (OpenAI or open_clip, loaded with
            :func:`~.weights.load_clip_checkpoint`), or an open_clip tag such as "openai"
            (downloaded by open_clip); "" = random initialisation seeded with ``seed``.
        quick_gelu: QuickGELU activations (OpenAI CLIP).
        seed: seed of the random initialisation.
    Returns:
        (model, tokenizer): ``tokenizer(list_of_str)`` gives int64 [n, context_length].
    Raises:
        ValueError: a config without the three entries, a vocabulary other than open_clip's
            BPE, or weights with a config.
    """
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if model_config:
            config = _check_model_config(model_config)
            if pretrained:
                raise ValueError("MODEL.VERTFOUND.CLIP.PRETRAINED must be empty when "
                                 "CLIP.MODEL_CONFIG builds a model from a config dict.")
            model = open_clip.CLIP(**config, quick_gelu=quick_gelu)
            context = config["text_cfg"].get("context_length", 77)
            return model, open_clip.tokenizer.SimpleTokenizer(context_length=context)
        if pretrained and not os.path.isfile(pretrained) and "/" in pretrained:
            raise ValueError(f"MODEL.VERTFOUND.CLIP.PRETRAINED {pretrained!r} does not exist; "
                             "download it with scripts/download_weights.py.")
        is_file = bool(pretrained) and os.path.isfile(pretrained)
        tag = None if is_file else (pretrained or None)
        model = open_clip.create_model(model_name, pretrained=tag, force_quick_gelu=quick_gelu)
    if is_file:
        from .weights import load_clip_checkpoint  # OpenAI TorchScript/state dict, open_clip

        logger.info("CLIP %s from %s:\n%s", model_name, pretrained,
                    load_clip_checkpoint(model, pretrained))
    return model, open_clip.get_tokenizer(model_name)


def _check_model_config(config: Dict[str, Any]) -> Dict[str, Any]:
    config = json.loads(json.dumps(config))  # plain dicts (a CfgNode is a dict subclass)
    missing = {"embed_dim", "vision_cfg", "text_cfg"} - set(config)
    if missing:
        raise ValueError(f"MODEL.VERTFOUND.CLIP.MODEL_CONFIG lacks {sorted(missing)}.")
    vocab = config["text_cfg"].get("vocab_size", 49408)
    if vocab != 49408:
        raise ValueError(f"CLIP.MODEL_CONFIG text_cfg.vocab_size is {vocab}; open_clip's BPE "
                         "tokenizer needs 49408.")
    return config


def text_embedding_dim(clip: nn.Module) -> int:
    """Width of CLIP's text embeddings, read from its text projection."""
    projection = clip.text_projection
    if isinstance(projection, nn.Linear):
        return projection.out_features
    return int(projection.shape[-1])


def clip_preprocess_description(resize: str) -> str:
    """How images reach CLIP (recorded in caches)."""
    how = "longest side resized, zero-padded" if resize == "pad" else "stretched to the square"
    return f"RGB 0..255 / 255; {how} (bilinear, antialias); (x - mean) / std"


class ClipImageTokens:
    """Tokens of selected residual blocks of an open_clip ``VisionTransformer``.

    A plain helper (not a module): the tower stays registered where its owner keeps it
    (``VertFound.clip.visual``), so parameter names are open_clip's.

    Attributes:
        visual: the vision tower (``clip.visual``).
        layers: block indices, in the order given (0-based, negatives resolved).
        image_size: CLIP's square input side, read from the model.
        width: token width, read from the model.
    """

    def __init__(self, visual: nn.Module, layers: Sequence[int], resize: str = "pad"):
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        if not hasattr(visual, "forward_intermediates") or not hasattr(visual, "transformer"):
            raise ValueError("CLIP's visual tower must be an open_clip VisionTransformer.")
        if resize not in CLIP_RESIZE_MODES:
            raise ValueError(f"MODEL.VERTFOUND.CLIP.RESIZE is {resize!r}; use {CLIP_RESIZE_MODES}.")
        depth = len(visual.transformer.resblocks)
        resolved = []
        for layer in layers:
            if not -depth <= layer < depth:
                raise ValueError(f"MODEL.VERTFOUND.CLIP.LAYERS has {layer}; the visual tower has "
                                 f"{depth} blocks (use 0..{depth - 1} or negatives).")
            resolved.append(layer % depth)
        if not resolved:
            raise ValueError("MODEL.VERTFOUND.CLIP.LAYERS is empty; name at least one block.")
        self.visual = visual
        self.layers = resolved
        self.resize = resize
        size = visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.width = int(visual.conv1.out_channels)
        config = getattr(visual, "preprocess_cfg", None) or {}
        mean = config.get("mean", OPENAI_DATASET_MEAN)
        std = config.get("std", OPENAI_DATASET_STD)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]

    def unused_parameters(self) -> List[nn.Parameter]:
        """Parameters the tokens do not depend on: blocks after the last one taken, ln_post,
        the projection and any attention pooler."""
        last = max(self.layers)
        modules = list(self.visual.transformer.resblocks)[last + 1:] + [self.visual.ln_post]
        if getattr(self.visual, "attn_pool", None) is not None:
            modules.append(self.visual.attn_pool)
        params = [p for m in modules for p in m.parameters()]
        if isinstance(self.visual.proj, nn.Parameter):
            params.append(self.visual.proj)
        return params

    def preprocess(self, images: Sequence[Tensor]) -> Tensor:
        """Images B x [3, H, W] RGB 0..255 to CLIP's normalised input [B, 3, S, S]."""
        size, out = self.image_size, []
        device = self.visual.conv1.weight.device
        mean = torch.tensor(self.mean, device=device).view(-1, 1, 1) * 255.0
        std = torch.tensor(self.std, device=device).view(-1, 1, 1) * 255.0
        for image in images:
            x = image.to(device=device, dtype=torch.float32)[None]
            height, width = x.shape[-2:]
            if self.resize == "stretch":
                new_h, new_w = size, size
            else:
                scale = size / max(height, width)
                new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
            if (new_h, new_w) != (height, width):
                x = F.interpolate(x, (new_h, new_w), mode="bilinear", align_corners=False,
                                  antialias=True)
            x = (x[0] - mean) / std
            out.append(F.pad(x, (0, size - new_w, 0, size - new_h)))
        return torch.stack(out)

    def __call__(self, batch: Tensor) -> Tensor:
        """Residual-stream tokens of the selected blocks.

        Args:
            batch: [B, 3, S, S] from :meth:`preprocess`.
        Returns:
            [B, L, T, W]: L = len(layers), T = 1 + grid tokens (class token first), before
            ``ln_post``.
        """
        unique = sorted(set(self.layers))
        out = self.visual.forward_intermediates(
            batch, indices=unique, stop_early=True, intermediates_only=True,
            output_fmt="NLC", output_extra_tokens=True,
        )
        tokens = [torch.cat([prefix, patches], dim=1) for prefix, patches in
                  zip(out["image_intermediates_prefix"], out["image_intermediates"])]
        return torch.stack([tokens[unique.index(layer)] for layer in self.layers], dim=1)
