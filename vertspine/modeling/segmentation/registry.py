"""The networks a :class:`~vertspine.modeling.segmentation.Segmentor` can hold, by name.

A builder is registered in ``SEG_NETWORK_REGISTRY`` and chosen by ``MODEL.SEGMENTOR.NETWORK``.
It is called as ``builder(cfg, out_channels)`` and returns a :class:`SegmentationNetwork`: the
module, mapping [N, IN_CHANNELS, *spatial] inputs to [N, out_channels, *spatial] logits (in
training with deep supervision [N, heads, out_channels, *spatial], main head first), and the
multiple that each input side must be of.
"""
from typing import NamedTuple, Tuple

from detectron2.utils.registry import Registry
from torch import nn

from .loss import ACTIVATIONS

__all__ = ["SEG_NETWORK_REGISTRY", "SegmentationNetwork", "build_segmentation_network",
           "output_channels"]

SEG_NETWORK_REGISTRY = Registry("SEG_NETWORK")
SEG_NETWORK_REGISTRY.__doc__ = """Segmentation networks: ``builder(cfg, out_channels)`` ->
:class:`SegmentationNetwork`, chosen by ``MODEL.SEGMENTOR.NETWORK``."""


class SegmentationNetwork(NamedTuple):
    """A built network and the multiple each input side must be of, per spatial axis."""

    module: nn.Module
    size_divisibility: Tuple[int, ...]


def output_channels(num_classes: int, activation: str) -> int:
    """Logit channels of a head: K + 1 with softmax, 1 with sigmoid (binary only).

    Raises:
        ValueError: naming ``MODEL.SEGMENTOR.NUM_CLASSES`` / ``ACTIVATION`` and the bad value.
    """
    if num_classes < 1:
        raise ValueError(f"MODEL.SEGMENTOR.NUM_CLASSES must be >= 1, got {num_classes}.")
    if activation not in ACTIVATIONS:
        raise ValueError(f"MODEL.SEGMENTOR.ACTIVATION '{activation}' is not one of {ACTIVATIONS}.")
    if activation == "sigmoid" and num_classes != 1:
        raise ValueError(f"MODEL.SEGMENTOR.ACTIVATION 'sigmoid' is binary (one logit): set "
                         f"NUM_CLASSES 1 (got {num_classes}) or ACTIVATION 'softmax'.")
    return 1 if activation == "sigmoid" else num_classes + 1


def build_segmentation_network(cfg) -> SegmentationNetwork:
    """The network named by ``MODEL.SEGMENTOR.NETWORK``, with the head ``NUM_CLASSES`` /
    ``ACTIVATION`` ask for.

    Raises:
        ValueError: unknown network or ``SPATIAL_DIMS``, or a bad head setting.
    """
    node = cfg.MODEL.SEGMENTOR
    if node.SPATIAL_DIMS not in (2, 3):
        raise ValueError(f"MODEL.SEGMENTOR.SPATIAL_DIMS must be 2 or 3, got {node.SPATIAL_DIMS}.")
    if node.NETWORK not in SEG_NETWORK_REGISTRY:
        names = sorted(name for name, _ in SEG_NETWORK_REGISTRY)
        raise ValueError(f"MODEL.SEGMENTOR.NETWORK '{node.NETWORK}' is not registered; "
                         f"choose one of {names}.")
    builder = SEG_NETWORK_REGISTRY.get(node.NETWORK)
    return builder(cfg, output_channels(node.NUM_CLASSES, node.ACTIVATION))
