"""LiteMedSAM's image encoder: the MobileSAM-style TinyViT with a SAM neck, in its key layout.

The architecture of bowang-lab/MedSAM (branch LiteMedSAM) ``tiny_vit_sam.py``, as
``CVPR24_LiteMedSAM_infer.py`` builds it: a patch embedding of two 1x1 stride-1 ``Conv2d_BN``
(the grid stays at the input side S), stage 0 of MBConv blocks, then stages of windowed
attention blocks; every stage but the last ends with a ``PatchMerging`` whose depthwise
convolution has stride 2, except the merge into the last stage (stride 1: the original tests
``out_dim in (320, 448, 576)``). At S = 256 with 4 stages the grids are 256, 128, 64, 64; the
neck (1x1 conv -> LayerNorm2d -> 3x3 conv -> LayerNorm2d, no biases) maps the last stage to
[N, 256, 64, 64]. Parameter names are the original's (``patch_embed.seq.N``,
``layers.N.blocks.M``, ``layers.N.downsample``, ``neck.N``; ``Conv2d_BN`` children ``c`` and
``bn``), so ``image_encoder.*`` of ``lite_medsam.pth`` loads key for key.

timm's TinyViT classifier has a stride-4 patch embedding and other key names (``stages.N``,
``conv``/``bn``); its attention (``Attention``: ``norm``, ``qkv``, ``proj``,
``attention_biases``) and MLP (``NormMlp``: ``norm``, ``fc1``, ``fc2``) have the original's
names and computation and are used here. timm and segment_anything are imported when a module
is built.
"""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["TinyViT", "tiny_vit_embedding_size"]


class Conv2dBN(nn.Sequential):
    """Conv2d without bias (``c``) then BatchNorm2d (``bn``): the original's ``Conv2d_BN``."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding,
                                       groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chans))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0.0)


def _drop_path(rate: float) -> nn.Module:
    from timm.layers import DropPath

    return DropPath(rate) if rate > 0 else nn.Identity()


class PatchEmbed(nn.Module):
    """[N, in_chans, S, S] -> [N, dim, S, S]: 1x1 Conv2dBN -> GELU -> 1x1 Conv2dBN."""

    def __init__(self, in_chans: int, dim: int):
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2), nn.GELU(), Conv2dBN(dim // 2, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block on [N, C, H, W]: 1x1 expand, 3x3 depthwise, 1x1 project."""

    def __init__(self, dim: int, expand_ratio: float, drop_path: float):
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1, self.act1 = Conv2dBN(dim, hidden), nn.GELU()
        self.conv2, self.act2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden), nn.GELU()
        self.conv3, self.act3 = Conv2dBN(hidden, dim, bn_weight_init=0.0), nn.GELU()
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.act3(x + self.drop_path(y))


class PatchMerging(nn.Module):
    """[N, dim, H, W] -> [N, out_dim, H / stride, W / stride] (1x1, 3x3 depthwise, 1x1)."""

    def __init__(self, dim: int, out_dim: int, stride: int):
        super().__init__()
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class TinyViTBlock(nn.Module):
    """Windowed attention, residual, 3x3 depthwise Conv2dBN, residual MLP, on [N, C, H, W].

    Windows of ``window_size``^2 tokens; the grid is zero-padded bottom/right to a multiple of
    the window for the attention and cropped back, as the original does.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float,
                 drop_path: float, local_conv_size: int):
        super().__init__()
        from timm.models.tiny_vit import Attention, NormMlp

        self.window_size = window_size
        self.attn = Attention(dim, dim // num_heads, num_heads, attn_ratio=1,
                              resolution=(window_size, window_size))
        self.drop_path = _drop_path(drop_path)
        self.mlp = NormMlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, local_conv_size, 1, local_conv_size // 2,
                                   groups=dim)

    def _window_attention(self, x: Tensor) -> Tensor:
        """[N, H, W, C] tokens -> the same after attention within each window."""
        n, h, w, c = x.shape
        win = self.window_size
        pad_b, pad_r = (-h) % win, (-w) % win
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        windows = x.view(n, ph // win, win, pw // win, win, c).transpose(2, 3)
        out = self.attn(windows.reshape(-1, win * win, c))
        out = out.view(n, ph // win, pw // win, win, win, c).transpose(2, 3).reshape(n, ph, pw, c)
        return out[:, :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1)
        tokens = tokens + self.drop_path(self._window_attention(tokens))
        x = self.local_conv(tokens.permute(0, 3, 1, 2))
        tokens = x.flatten(2).transpose(1, 2)  # [N, H W, C]
        tokens = tokens + self.drop_path(self.mlp(tokens))
        return tokens.transpose(1, 2).reshape(n, c, h, w)


@contextmanager
def _batchnorm_statistics_kept(module: nn.Module) -> Iterator[None]:
    """Restore the BatchNorm running statistics of ``module`` on exit, also when torch stops a
    recomputation early with an exception: the recomputation of a checkpointed block must not
    update them a second time."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
             for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, values in zip(norms, saved):
                for buffer, value in zip((m.running_mean, m.running_var, m.num_batches_tracked),
                                         values):
                    buffer.copy_(value)


def _checkpoint_contexts(block: nn.Module):
    """(forward context, recomputation context) of a checkpointed block."""
    return nullcontext(), _batchnorm_statistics_kept(block)


class TinyViTStage(nn.Module):
    """``blocks`` (MBConv or TinyViTBlock), then an optional ``downsample`` (PatchMerging).

    With ``grad_checkpoint`` (the original's ``use_checkpoint``), training keeps only each
    block's input and recomputes the block in the backward pass (non-reentrant
    ``torch.utils.checkpoint``; the recomputation leaves the BatchNorm statistics as the forward
    pass set them).
    """

    def __init__(self, blocks: Sequence[nn.Module], downsample: Optional[nn.Module] = None,
                 grad_checkpoint: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.grad_checkpoint = grad_checkpoint

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            if self.grad_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False,
                               context_fn=partial(_checkpoint_contexts, block))
            else:
                x = block(x)
        return x if self.downsample is None else self.downsample(x)


def tiny_vit_embedding_size(image_size: int, num_stages: int) -> int:
    """Embedding side E of a TinyViT with ``num_stages`` stages on S x S inputs:
    S / 2^(num_stages - 2) (the merges halve the grid, the last one keeps it)."""
    return image_size // 2 ** (num_stages - 2)


class TinyViT(nn.Module):
    """LiteMedSAM's TinyViT image encoder: [N, 3, S, S] in [0, 1] -> [N, out_chans, E, E].

    Args:
        embed_dims: width of each stage (at least 2 stages; LiteMedSAM 64, 128, 160, 320).
        depths: blocks per stage (2, 2, 6, 2).
        num_heads: attention heads per stage (stage 0 has none; 2, 4, 5, 10).
        window_sizes: attention window side per stage (7, 7, 14, 7).
        mlp_ratio: MLP width / stage width (4).
        mbconv_expand_ratio: MBConv hidden width / width (4).
        local_conv_size: depthwise kernel between attention and MLP (3).
        drop_path_rate: stochastic depth, linear over the blocks from 0 to this rate.
        grad_checkpoint: recompute each block in the backward pass instead of keeping its
            activations (less training memory, about one more forward pass of time).
        in_chans: input channels (3).
        out_chans: embedding width (256: SAM's prompt encoder and mask decoder).
    """

    def __init__(self, *, embed_dims: Sequence[int], depths: Sequence[int],
                 num_heads: Sequence[int], window_sizes: Sequence[int], mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0, local_conv_size: int = 3,
                 drop_path_rate: float = 0.0, grad_checkpoint: bool = False, in_chans: int = 3,
                 out_chans: int = 256):
        super().__init__()
        from segment_anything.modeling.common import LayerNorm2d

        num_stages = len(embed_dims)
        total = sum(depths)  # stochastic depth rates as torch.linspace(0, rate, total)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        self.layers = nn.ModuleList()
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            stage_rates = rates[sum(depths[:i]):sum(depths[:i + 1])]
            if i == 0:
                blocks = [MBConv(dim, mbconv_expand_ratio, r) for r in stage_rates]
            else:
                blocks = [TinyViTBlock(dim, num_heads[i], window_sizes[i], mlp_ratio, r,
                                       local_conv_size) for r in stage_rates]
            downsample = None
            if i < num_stages - 1:
                stride = 1 if i == num_stages - 2 else 2
                downsample = PatchMerging(dim, embed_dims[i + 1], stride)
            self.layers.append(TinyViTStage(blocks, downsample, grad_checkpoint))
        self.apply(_init_weights)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: Tensor) -> Tensor:
        """[N, in_chans, S, S] -> [N, out_chans, E, E] (see :func:`tiny_vit_embedding_size`)."""
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


def _init_weights(module: nn.Module) -> None:
    """The original's initialisation (before the neck is built): truncated-normal Linear
    weights (std 0.02) with zero biases, LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
