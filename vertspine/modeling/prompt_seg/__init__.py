"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): an image encoder chosen from
:data:`PROMPT_SEG_ENCODER_REGISTRY` + SAM's prompt encoder and mask decoder.

Importing this package registers the family's modules (see each module's docstring).
"""
from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder
from .efficientvit_config import add_efficientvit_distill_config
from .efficientvit_sam import EfficientViTSamEncoder
from .efficientvit_weights import load_daft_checkpoints, load_efficientvit_sam_weights
from .distill import PromptSegDistiller

__all__ = [
    "PROMPT_SEG_ENCODER_REGISTRY", "EfficientViTSamEncoder", "PromptSegDistiller",
    "PromptSegEncoder", "add_efficientvit_distill_config", "load_daft_checkpoints",
    "load_efficientvit_sam_weights",
]
