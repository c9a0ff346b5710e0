"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): an image encoder chosen from
:data:`PROMPT_SEG_ENCODER_REGISTRY` + SAM's prompt encoder and mask decoder.

Importing this package registers the family's modules: the ``MODEL.PROMPT_SEG`` config
(:mod:`.config`), the encoders ``tiny_vit`` and ``sam_vit_b`` (:mod:`.encoders`) and the
``PromptSegmentor`` meta-architecture (:mod:`.meta_arch`).
"""
from .checkpoint import ENCODER_LAYOUTS, encoder_layout, load_prompt_seg_checkpoint
from .config import add_prompt_seg_config
from .decoding import decode_boxes, postprocess_logits, upsample_logits
from .encoders import sam_vit_b, tiny_vit
from .loss import PromptSegLoss, mask_iou
from .meta_arch import PromptSegmentor, build_prompt_seg_encoder
from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder
from .tiny_vit import TinyViT, tiny_vit_embedding_size

__all__ = [
    "ENCODER_LAYOUTS",
    "PROMPT_SEG_ENCODER_REGISTRY",
    "PromptSegEncoder",
    "PromptSegLoss",
    "PromptSegmentor",
    "TinyViT",
    "add_prompt_seg_config",
    "build_prompt_seg_encoder",
    "decode_boxes",
    "encoder_layout",
    "load_prompt_seg_checkpoint",
    "mask_iou",
    "postprocess_logits",
    "sam_vit_b",
    "tiny_vit",
    "tiny_vit_embedding_size",
    "upsample_logits",
]
