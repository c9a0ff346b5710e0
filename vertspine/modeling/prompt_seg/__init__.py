"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): an image encoder chosen from
:data:`PROMPT_SEG_ENCODER_REGISTRY` + SAM's prompt encoder and mask decoder.

Importing this package registers the family's modules (see each module's docstring).
"""
from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder

__all__ = ["PROMPT_SEG_ENCODER_REGISTRY", "PromptSegEncoder"]
