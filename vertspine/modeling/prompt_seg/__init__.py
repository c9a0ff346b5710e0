"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): an image encoder chosen from
:data:`PROMPT_SEG_ENCODER_REGISTRY` + SAM's prompt encoder and mask decoder.

Importing this package registers the family's modules: the ``MODEL.PROMPT_SEG`` config
(:mod:`.config`, then the EfficientViT and distillation keys of :mod:`.efficientvit_config`),
the encoders ``tiny_vit`` and ``sam_vit_b`` (:mod:`.encoders`), ``efficientvit_sam_l0`` and
``efficientvit_sam_tiny`` (:mod:`.efficientvit_sam`), and the ``PromptSegmentor``
(:mod:`.meta_arch`) and ``PromptSegDistiller`` (:mod:`.distill`) meta-architectures.
"""
from .checkpoint import ENCODER_LAYOUTS, encoder_layout, load_prompt_seg_checkpoint
from .config import add_prompt_seg_config
from .efficientvit_config import add_efficientvit_distill_config  # after .config: sub-nodes
from .decoding import decode_boxes, postprocess_logits, upsample_logits
from .distill import PromptSegDistiller
from .efficientvit_sam import EfficientViTSamEncoder
from .efficientvit_weights import load_daft_checkpoints, load_efficientvit_sam_weights
from .encoders import sam_vit_b, tiny_vit
from .loss import PromptSegLoss, mask_iou
from .meta_arch import PromptSegmentor, build_prompt_seg_encoder
from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder
from .tiny_vit import TinyViT, tiny_vit_embedding_size

__all__ = [
    "ENCODER_LAYOUTS",
    "EfficientViTSamEncoder",
    "PROMPT_SEG_ENCODER_REGISTRY",
    "PromptSegDistiller",
    "PromptSegEncoder",
    "PromptSegLoss",
    "PromptSegmentor",
    "TinyViT",
    "add_efficientvit_distill_config",
    "add_prompt_seg_config",
    "build_prompt_seg_encoder",
    "decode_boxes",
    "encoder_layout",
    "load_daft_checkpoints",
    "load_efficientvit_sam_weights",
    "load_prompt_seg_checkpoint",
    "mask_iou",
    "postprocess_logits",
    "sam_vit_b",
    "tiny_vit",
    "tiny_vit_embedding_size",
    "upsample_logits",
]
