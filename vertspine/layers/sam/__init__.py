"""Segment Anything building blocks shared by every family that uses SAM.

- :mod:`.build`: a ``Sam`` of any size (vit_b/l/h, :class:`SamSize` for others) at any input
  side, or its image encoder, prompt encoder and mask decoder alone;
- :mod:`.checkpoint`: official SAM, MedSAM and LVM-Med ViT-B checkpoints loaded key for key,
  with a :class:`~vertspine.utils.checkpoint_report.CheckpointReport`;
- :mod:`.preprocess`: longest-side resize, pixel normalisation, bottom/right padding, boxes in
  the same frame;
- :mod:`.image_encoder`: the image encoder on inputs of any size.

segment_anything is imported only inside the functions that build modules.
"""
from .build import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    SAM_SIZES,
    SamSize,
    build_sam,
    build_sam_image_encoder,
    build_sam_mask_decoder,
    build_sam_prompt_encoder,
)
from .checkpoint import (
    SAM_KEY_LAYOUTS,
    SAM_VARIANTS,
    load_sam_checkpoint,
    sam_key_layout,
    sam_state_for,
    sam_variant,
)
from .image_encoder import SAM_ENCODER_SIGNATURE, encode_image, resize_abs_pos
from .preprocess import SAM_PREPROCESSING, preprocess_images, resized_shape, transform_boxes

__all__ = [
    "SAM_ENCODER_SIGNATURE",
    "SAM_KEY_LAYOUTS",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "SAM_PREPROCESSING",
    "SAM_SIZES",
    "SAM_VARIANTS",
    "SamSize",
    "build_sam",
    "build_sam_image_encoder",
    "build_sam_mask_decoder",
    "build_sam_prompt_encoder",
    "encode_image",
    "load_sam_checkpoint",
    "preprocess_images",
    "resize_abs_pos",
    "resized_shape",
    "sam_key_layout",
    "sam_state_for",
    "sam_variant",
    "transform_boxes",
]
