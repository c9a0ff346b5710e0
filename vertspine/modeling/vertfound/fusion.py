"""The fusion module (VertFound's "VPS"): box SAM tokens attend to multi-layer CLIP tokens.

Each box's SAM mask token, projected to CLIP's visual width by ``sam_proj``, is a query. One
block per CLIP layer: cross-attention from the boxes to that layer's tokens (normalised per
layer), self-attention between the image's boxes with a key-padding mask (so padded slots of a
batch never reach real boxes), and a feed-forward layer, all pre-norm with residuals. The
result is projected into CLIP's text-embedding space, one feature per box.

This replaces the released PANDecoder, which attended from CLIP tokens to the boxes without a
padding mask and reshaped channels into a fake image (see the VertFound spec, weak point 6).
"""
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["GEOMETRY_FEATURES", "FusionBlock", "VertebraFusion", "box_geometry"]

GEOMETRY_FEATURES = 9


def box_geometry(boxes: Tensor, valid: Tensor) -> Tensor:
    """Scale-free geometry of each box within its image's set of boxes.

    Args:
        boxes: [B, N, 4] XYXY divided by the image's (w, h, w, h).
        valid: [B, N] bool, False at padded slots.
    Returns:
        [B, N, 9]: cx, cy, w, h; log(w / h); log h and log w minus their mean over the image's
        boxes; the rank from the top (0 first, 1 last) and the box count / 25. Each image's
        values depend only on its own valid boxes; padded slots get zeros.
    """
    eps = 1e-6
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=eps)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=eps)
    cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
    mask = valid.to(boxes.dtype)
    count = mask.sum(dim=1, keepdim=True)
    log_w, log_h = w.log() * mask, h.log() * mask
    rel_w = log_w - log_w.sum(1, keepdim=True) / count.clamp(min=1)
    rel_h = log_h - log_h.sum(1, keepdim=True) / count.clamp(min=1)
    key = torch.where(valid, cy, torch.full_like(cy, float("inf")))
    rank = key.argsort(dim=1).argsort(dim=1).to(boxes.dtype)
    rank = rank / (count - 1).clamp(min=1)
    features = torch.stack([cx, cy, w, h, (w / h).log(), rel_w, rel_h, rank,
                            count.expand_as(cx) / 25.0], dim=-1)
    return features * mask[..., None]


class FusionBlock(nn.Module):
    """Cross-attention to one CLIP layer, optional box self-attention, feed-forward.

    Args:
        width: query and token width W.
        num_heads: attention heads (divides W).
        ffn_dim: feed-forward hidden width.
        dropout: dropout on attention weights and residual branches.
        self_attention: add box-to-box self-attention.
    """

    def __init__(self, width: int, num_heads: int, ffn_dim: int, dropout: float,
                 self_attention: bool = True):
        super().__init__()
        self.norm_q = nn.LayerNorm(width)
        self.norm_kv = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, num_heads, dropout=dropout,
                                                batch_first=True)
        self.self_attn = None
        if self_attention:
            self.norm_self = nn.LayerNorm(width)
            self.self_attn = nn.MultiheadAttention(width, num_heads, dropout=dropout,
                                                   batch_first=True)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: Tensor, tokens: Tensor, padding: Tensor) -> Tensor:
        """
        Args:
            queries: [B, N, W] box queries.
            tokens: [B, T, W] CLIP tokens of one layer.
            padding: [B, N] bool, True at padded box slots.
        Returns:
            [B, N, W] updated queries (padded slots hold values nobody reads).
        """
        kv = self.norm_kv(tokens)
        q = self.norm_q(queries)
        queries = queries + self.dropout(self.cross_attn(q, kv, kv, need_weights=False)[0])
        if self.self_attn is not None:
            q = self.norm_self(queries)
            attended = self.self_attn(q, q, q, key_padding_mask=padding, need_weights=False)[0]
            queries = queries + self.dropout(attended)
        return queries + self.dropout(self.ffn(self.norm_ffn(queries)))


class VertebraFusion(nn.Module):
    """Box features in CLIP's text space from SAM box tokens and CLIP image tokens.

    Args:
        sam_dim: width of the SAM mask token (256 for the official SAM).
        clip_width: CLIP's visual width W (1024 for ViT-L/14).
        num_layers: CLIP layers fused, one block each.
        text_dim: CLIP's text-embedding width (768 for ViT-L/14).
        num_heads, ffn_dim, dropout, self_attention: see :class:`FusionBlock`.
        box_position: add an embedding of the box geometry (:func:`box_geometry`) to the queries.
        roi_dim: width of RoI features that follow the SAM token in the input (0 = none); they
            are projected by ``roi_proj`` and added to the queries.
    """

    def __init__(self, *, sam_dim: int, clip_width: int, num_layers: int, text_dim: int,
                 num_heads: int = 8, ffn_dim: int = 0, dropout: float = 0.1,
                 self_attention: bool = True, box_position: bool = True, roi_dim: int = 0):
        super().__init__()
        if clip_width % num_heads:
            raise ValueError(f"MODEL.VERTFOUND.FUSION.NUM_HEADS {num_heads} does not divide "
                             f"CLIP's visual width {clip_width}.")
        self.sam_dim = sam_dim
        self.sam_proj = nn.Linear(sam_dim, clip_width)
        self.roi_proj = nn.Linear(roi_dim, clip_width) if roi_dim else None
        self.box_embed = None
        if box_position:
            self.box_embed = nn.Sequential(nn.Linear(GEOMETRY_FEATURES, clip_width), nn.GELU(),
                                           nn.Linear(clip_width, clip_width))
        self.blocks = nn.ModuleList(
            FusionBlock(clip_width, num_heads, ffn_dim or 4 * clip_width, dropout, self_attention)
            for _ in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(clip_width)
        self.text_proj = nn.Linear(clip_width, text_dim)

    def forward(self, sam_tokens: Tensor, clip_tokens: Tensor, valid: Tensor,
                boxes: Optional[Tensor] = None) -> Tensor:
        """
        Args:
            sam_tokens: [B, N, C (+ roi_dim)] SAM mask tokens (then RoI features), zero at
                padded slots.
            clip_tokens: [B, L, T, W] CLIP tokens of the L fused layers.
            valid: [B, N] bool, False at padded slots.
            boxes: [B, N, 4] XYXY boxes divided by the image's (w, h, w, h); needed when
                ``box_position`` is on.
        Returns:
            [B, N, text_dim] box features (rows of padded slots are meaningless).
        """
        if clip_tokens.shape[1] != len(self.blocks):
            raise ValueError(f"Got {clip_tokens.shape[1]} CLIP layers for {len(self.blocks)} "
                             "fusion blocks.")
        queries = self.sam_proj(sam_tokens[..., : self.sam_dim])
        if self.roi_proj is not None:
            queries = queries + self.roi_proj(sam_tokens[..., self.sam_dim:])
        if self.box_embed is not None:
            queries = queries + self.box_embed(box_geometry(boxes, valid))
        padding = ~valid
        # A row of only padding would give NaN attention; unmask its first slot (never read).
        padding = padding.clone()
        padding[:, 0] &= valid.any(dim=1)
        for layer, block in enumerate(self.blocks):
            queries = block(queries, clip_tokens[:, layer], padding)
        return self.text_proj(self.norm_out(queries))
