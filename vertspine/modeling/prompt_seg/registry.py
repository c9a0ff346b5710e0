"""The image encoders a box-prompted segmenter can hold, by name (``MODEL.PROMPT_SEG.ENCODER``).

A builder is registered in :data:`PROMPT_SEG_ENCODER_REGISTRY` and called as ``builder(cfg)``;
it returns a :class:`PromptSegEncoder`: the module, mapping [N, 3, S, S] images (preprocessed:
min-max scaled to [0, 1] or SAM-normalised, as ``pixel_scaling`` says, padded bottom/right to
``input_size`` S) to [N, 256, E, E] image embeddings (E = ``embedding_size``, 64 for SAM ViT-B at
1024, TinyViT at 256 and EfficientViT-SAM-L0 at 256).
"""
from typing import NamedTuple

from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["PROMPT_SEG_ENCODER_REGISTRY", "PromptSegEncoder"]

PROMPT_SEG_ENCODER_REGISTRY = Registry("PROMPT_SEG_ENCODER")
PROMPT_SEG_ENCODER_REGISTRY.__doc__ = """Image encoders of box-prompted segmentation:
``builder(cfg)`` -> :class:`PromptSegEncoder`, chosen by ``MODEL.PROMPT_SEG.ENCODER``."""


class PromptSegEncoder(NamedTuple):
    """A built image encoder and the input it expects.

    Attributes:
        module: [N, 3, S, S] -> [N, 256, E, E].
        input_size: S, the padded square side in pixels.
        embedding_size: E, the embedding's side.
        pixel_scaling: "minmax" (each image scaled to [0, 1]: LiteMedSAM, DAFT, and MedSAM,
            whose MedSAM_Inference.py feeds min-max scaled images to its ViT-B) or "sam"
            (0-255 normalised with SAM's pixel mean and std: SAM's own weights).
    """

    module: nn.Module
    input_size: int
    embedding_size: int
    pixel_scaling: str
