"""The ``INPUT.PROMPT_SEG`` keys: preprocessing and training augmentation of box-prompted
segmentation (MedSAM, LiteMedSAM, DAFT), read by :class:`.mapper.PromptSegMapper` and, for
``IMAGE_SIZE``, by the family's image encoders."""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_prompt_seg_input_config"]


@register_config
def add_prompt_seg_input_config(cfg: CN) -> CN:
    """Add ``INPUT.PROMPT_SEG`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.INPUT.PROMPT_SEG = node = CN()
    # Model input side S in px: the longest side is resized to S, then padded to S x S
    # (256 for LiteMedSAM and DAFT, 1024 for MedSAM).
    node.IMAGE_SIZE = 256
    # Training: at most this many objects (boxes) per image, drawn at random; 0 keeps all.
    node.BOXES_PER_IMAGE = 8
    # Training: each box side moves outwards by randint(0, BOX_JITTER) px (inclusive) of the
    # S x S frame, clipped to the resized image (LiteMedSAM: 5); 0 disables.
    node.BOX_JITTER = 5
    # Training, 3D slices: probability that an object's box is taken from its mask on an
    # adjacent slice (z - 1 or z + 1, where the object is present) instead of its own, as 3D
    # inference prompts each slice with the previous slice's mask box; 0 disables.
    node.NEIGHBOUR_SLICE_BOX_PROB = 0.0
    # Training, 3D slices: probability that an object whose box came from an adjacent slice
    # also gets that slice's mask as a mask prompt (MODEL.PROMPT_SEG.MASK_PROMPT), as 3D
    # propagation gives each slice the previous slice's mask; 0 disables.
    node.MASK_PROMPT_PROB = 0.0
    # Training: a mask prompt is dilated or eroded (even odds) by randint(0, MASK_PROMPT_DISTORT)
    # px of the S x S frame, standing in for the errors of the previous slice's prediction.
    node.MASK_PROMPT_DISTORT = 0
    # Training: probability of a horizontal flip and, independently, of a vertical flip.
    node.FLIP_PROB = 0.5
    # CT window (level, width) in HU applied before the min-max normalisation to records whose
    # modality is in CT_WINDOW_MODALITIES; () disables it (as the originals).
    node.CT_WINDOW = ()
    # Modalities the CT window applies to (their images must hold Hounsfield units).
    node.CT_WINDOW_MODALITIES = ("CT",)
    return cfg
