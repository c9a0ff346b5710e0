"""MONAI ``DynUNet`` (2D or 3D) as a segmentation network: ``NETWORK "dynunet"``.

The nnU-Net-style U-Net of MONAI (``monai.networks.nets.DynUNet``), configured by
``MODEL.SEGMENTOR.DYNUNET``: filters, kernels and strides per level, upsampling kernels equal to
the strides of the levels below (``STRIDES[1:]``), instance norm and LeakyReLU (MONAI's
defaults), residual blocks and deep supervision as options. vesselFM's network is the default:
filters 32/64/128/256/320/320, 3^3 kernels, strides 1,2,2,2,2,2, residual blocks.
"""
import math
from typing import List, Sequence, Tuple

from .registry import SEG_NETWORK_REGISTRY, SegmentationNetwork

__all__ = ["dynunet", "per_level"]

_KEY = "MODEL.SEGMENTOR.DYNUNET"


def per_level(name: str, values: Sequence, spatial_dims: int) -> List[Tuple[int, ...]]:
    """``values`` (one int, or one int per axis, per level) as per-axis tuples of positive ints.

    Args:
        name: the key under ``MODEL.SEGMENTOR.DYNUNET`` (for error messages).
        values: per-level entries, e.g. ``[1, 2, [2, 2, 1]]``.
        spatial_dims: 2 or 3.
    Raises:
        ValueError: an entry that is not a positive int or ``spatial_dims`` positive ints.
    """
    levels = []
    for level, value in enumerate(values):
        axes = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
        if len(axes) != spatial_dims or not all(isinstance(a, int) and a > 0 for a in axes):
            raise ValueError(f"{_KEY}.{name}[{level}] is {value!r}: give a positive int or "
                             f"{spatial_dims} positive ints (one per spatial axis).")
        levels.append(axes)
    return levels


@SEG_NETWORK_REGISTRY.register()
def dynunet(cfg, out_channels: int) -> SegmentationNetwork:
    """MONAI ``DynUNet`` from ``MODEL.SEGMENTOR.DYNUNET``; arguments checked before building.

    Input sides must be multiples of the product of the strides along each axis.

    Raises:
        ValueError: naming the ``MODEL.SEGMENTOR.DYNUNET`` key and its bad value.
    """
    node, net = cfg.MODEL.SEGMENTOR, cfg.MODEL.SEGMENTOR.DYNUNET
    dims = node.SPATIAL_DIMS
    kernels = per_level("KERNEL_SIZES", net.KERNEL_SIZES, dims)
    strides = per_level("STRIDES", net.STRIDES, dims)
    filters = list(net.FILTERS)
    if not len(filters) == len(kernels) == len(strides) >= 3:
        raise ValueError(f"{_KEY}.FILTERS, KERNEL_SIZES and STRIDES need one entry per level and "
                         f"at least 3 levels; got {len(filters)}, {len(kernels)} and "
                         f"{len(strides)}.")
    if not all(isinstance(f, int) and f > 0 for f in filters):
        raise ValueError(f"{_KEY}.FILTERS must be positive ints, got {filters}.")
    for level, (kernel, stride) in enumerate(zip(kernels, strides)):
        if any(s > (2 if net.RES_BLOCK else k + 1) for k, s in zip(kernel, stride)):
            raise ValueError(f"{_KEY}.STRIDES[{level}] {list(stride)} is too large for "
                             f"KERNEL_SIZES[{level}] {list(kernel)}: MONAI needs stride <= kernel "
                             "+ 1, and stride <= 2 with RES_BLOCK (its 1x1 shortcut).")
    if net.DEEP_SUPERVISION and not 1 <= net.DEEP_SUPR_NUM <= len(strides) - 2:
        raise ValueError(f"{_KEY}.DEEP_SUPR_NUM must be in 1..{len(strides) - 2} (levels - 2) "
                         f"with DEEP_SUPERVISION, got {net.DEEP_SUPR_NUM}.")
    from monai.networks.nets import DynUNet

    module = DynUNet(dims, node.IN_CHANNELS, out_channels, kernel_size=kernels, strides=strides,
                     upsample_kernel_size=strides[1:], filters=filters, res_block=net.RES_BLOCK,
                     deep_supervision=net.DEEP_SUPERVISION, deep_supr_num=net.DEEP_SUPR_NUM)
    divisibility = tuple(math.prod(level[axis] for level in strides) for axis in range(dims))
    return SegmentationNetwork(module, divisibility)
