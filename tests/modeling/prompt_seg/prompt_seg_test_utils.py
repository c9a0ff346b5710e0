"""Shared pieces of the prompt_seg tests: tiny configs and models, and the key layout of
LiteMedSAM's ``tiny_vit_sam.py`` written out independently of vertspine's module."""
import os
from typing import Dict, Sequence, Tuple

import torch
from detectron2.modeling import build_model

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.layers.sam import SamSize

INSTANT = os.path.join(REPO_ROOT, "configs/quick_schedules",
                       "litemedsam_tinyvit_phantom_2d_instant_test.yaml")
# SAM ViT of width 32, depth 2 (block 1 global, block 0 in 4 x 4 windows), patch 4: at 32 px an
# 8 x 8 embedding. TINY_SAM_VIT sets the same sizes through MODEL.PROMPT_SEG.SAM_VIT_B.
TINY_SAM_SIZE = SamSize(encoder_dim=32, encoder_depth=2, encoder_heads=2, global_attn_indexes=(1,),
                        window_size=4, use_rel_pos=True, patch_size=4)
TINY_SAM_VIT = [
    "MODEL.PROMPT_SEG.ENCODER", "sam_vit_b", "MODEL.PROMPT_SEG.SAM_VIT_B.EMBED_DIM", "32",
    "MODEL.PROMPT_SEG.SAM_VIT_B.DEPTH", "2", "MODEL.PROMPT_SEG.SAM_VIT_B.NUM_HEADS", "2",
    "MODEL.PROMPT_SEG.SAM_VIT_B.GLOBAL_ATTN_INDEXES", "[1]",
    "MODEL.PROMPT_SEG.SAM_VIT_B.WINDOW_SIZE", "4", "MODEL.PROMPT_SEG.SAM_VIT_B.PATCH_SIZE", "4",
]


def tiny_cfg(*overrides: str):
    """The instant config (tiny TinyViT at 32 px) with ``KEY VALUE`` overrides."""
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(INSTANT)
    cfg.merge_from_list(list(overrides))
    return cfg


def tiny_model(*overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(tiny_cfg(*overrides))


def _conv_bn(prefix: str, out_ch: int, in_per_group: int, k: int) -> Dict[str, Tuple[int, ...]]:
    """A ``Conv2d_BN`` (``c`` without bias, ``bn`` with its statistics)."""
    shapes = {f"{prefix}.c.weight": (out_ch, in_per_group, k, k)}
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.bn.{name}"] = (out_ch,)
    shapes[f"{prefix}.bn.num_batches_tracked"] = ()
    return shapes


def lite_medsam_encoder_shapes(dims: Sequence[int], depths: Sequence[int],
                               heads: Sequence[int], windows: Sequence[int], mlp_ratio: float = 4.0,
                               expand: float = 4.0) -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of the persistent state of tiny_vit_sam.py's ``TinyViT`` (LiteMedSAM),
    from its source: PatchEmbed(seq: Conv2d_BN 1x1, GELU, Conv2d_BN 1x1), ConvLayer of MBConv
    (conv1 1x1, conv2 3x3 depthwise, conv3 1x1), BasicLayer of TinyViTBlock (attn: norm, qkv,
    proj, attention_biases [heads, window^2]; mlp: norm, fc1, fc2; local_conv 3x3 depthwise),
    PatchMerging (conv1 1x1, conv2 3x3 depthwise, conv3 1x1), neck (conv, LayerNorm2d x 2)."""
    s = {}
    s.update(_conv_bn("patch_embed.seq.0", dims[0] // 2, 3, 1))
    s.update(_conv_bn("patch_embed.seq.2", dims[0], dims[0] // 2, 1))
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        for b in range(depth):
            p = f"layers.{i}.blocks.{b}"
            if i == 0:
                hidden = int(dim * expand)
                s.update(_conv_bn(f"{p}.conv1", hidden, dim, 1))
                s.update(_conv_bn(f"{p}.conv2", hidden, 1, 3))
                s.update(_conv_bn(f"{p}.conv3", dim, hidden, 1))
                continue
            key_dim = dim // heads[i]
            qkv = key_dim * heads[i] * 3  # attn_ratio 1: d = key_dim
            s.update({f"{p}.attn.norm.weight": (dim,), f"{p}.attn.norm.bias": (dim,),
                      f"{p}.attn.qkv.weight": (qkv, dim), f"{p}.attn.qkv.bias": (qkv,),
                      f"{p}.attn.proj.weight": (dim, dim), f"{p}.attn.proj.bias": (dim,),
                      f"{p}.attn.attention_biases": (heads[i], windows[i] ** 2),
                      f"{p}.mlp.norm.weight": (dim,), f"{p}.mlp.norm.bias": (dim,),
                      f"{p}.mlp.fc1.weight": (int(dim * mlp_ratio), dim),
                      f"{p}.mlp.fc1.bias": (int(dim * mlp_ratio),),
                      f"{p}.mlp.fc2.weight": (dim, int(dim * mlp_ratio)),
                      f"{p}.mlp.fc2.bias": (dim,)})
            s.update(_conv_bn(f"{p}.local_conv", dim, 1, 3))
        if i < len(dims) - 1:
            out = dims[i + 1]
            s.update(_conv_bn(f"layers.{i}.downsample.conv1", out, dim, 1))
            s.update(_conv_bn(f"layers.{i}.downsample.conv2", out, 1, 3))
            s.update(_conv_bn(f"layers.{i}.downsample.conv3", out, out, 1))
    s.update({"neck.0.weight": (256, dims[-1], 1, 1), "neck.1.weight": (256,),
              "neck.1.bias": (256,), "neck.2.weight": (256, 256, 3, 3), "neck.3.weight": (256,),
              "neck.3.bias": (256,)})
    return s
