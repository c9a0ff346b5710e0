"""Box-prompted segmentation (MedSAM, LiteMedSAM, DAFT): an image encoder chosen from
:data:`PROMPT_SEG_ENCODER_REGISTRY` + SAM's prompt encoder and mask decoder.

Importing this package registers the family's modules: the ``MODEL.PROMPT_SEG`` config
(:mod:`.config`, then the EfficientViT and distillation keys of :mod:`.efficientvit_config`),
the encoders ``tiny_vit`` and ``sam_vit_b`` (:mod:`.encoders`), ``efficientvit_sam_l0`` and
``efficientvit_sam_tiny`` (:mod:`.efficientvit_sam`), and the ``PromptSegmentor``
(:mod:`.meta_arch`) and ``PromptSegDistiller`` (:mod:`.distill`) meta-architectures. Inference on
npz cases: the two exported graphs (:mod:`.export`), :class:`BoxPromptPredictor`
(:mod:`.predictor`) and the per-modality routing (:mod:`.routing`).
"""
from .checkpoint import ENCODER_LAYOUTS, encoder_layout, load_prompt_seg_checkpoint
from .config import add_prompt_seg_config
from .efficientvit_config import add_efficientvit_distill_config  # after .config: sub-nodes
from .decoding import decode_boxes, postprocess_logits, upsample_logits
from .distill import PromptSegDistiller
from .efficientvit_sam import EfficientViTSamEncoder
from .efficientvit_weights import load_daft_checkpoints, load_efficientvit_sam_weights
from .encoders import sam_vit_b, tiny_vit
from .export import EXPORT_MANIFEST, BoxDecoder, export_prompt_seg, read_export_manifest
from .loss import PromptSegLoss, mask_iou
from .meta_arch import PromptSegmentor, build_prompt_seg_encoder
from .predictor import BoxPromptPredictor, CasePrediction, inference_options
from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder
from .routing import GENERAL_ROUTE, ModelRouter, RoutingError, find_routes
from .tiny_vit import TinyViT, tiny_vit_embedding_size

__all__ = [
    "BoxDecoder",
    "BoxPromptPredictor",
    "CasePrediction",
    "ENCODER_LAYOUTS",
    "EXPORT_MANIFEST",
    "GENERAL_ROUTE",
    "ModelRouter",
    "EfficientViTSamEncoder",
    "PROMPT_SEG_ENCODER_REGISTRY",
    "PromptSegDistiller",
    "PromptSegEncoder",
    "PromptSegLoss",
    "PromptSegmentor",
    "RoutingError",
    "TinyViT",
    "add_efficientvit_distill_config",
    "add_prompt_seg_config",
    "build_prompt_seg_encoder",
    "decode_boxes",
    "encoder_layout",
    "export_prompt_seg",
    "find_routes",
    "load_daft_checkpoints",
    "load_efficientvit_sam_weights",
    "load_prompt_seg_checkpoint",
    "mask_iou",
    "postprocess_logits",
    "inference_options",
    "read_export_manifest",
    "sam_vit_b",
    "tiny_vit",
    "tiny_vit_embedding_size",
    "upsample_logits",
]
