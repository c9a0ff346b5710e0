"""The ``MODEL.PROMPT_SEG.EFFICIENTVIT`` and ``MODEL.PROMPT_SEG.DISTILL`` keys (DAFT's encoder
and the embedding distillation).

The family's node ``MODEL.PROMPT_SEG`` (``ENCODER``, ...) is added by the family's
``config.py``; this function adds its two sub-nodes, creating ``MODEL.PROMPT_SEG`` only where
it is absent. The input size is ``INPUT.PROMPT_SEG.IMAGE_SIZE`` (the data config).
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_efficientvit_distill_config"]


@register_config
def add_efficientvit_distill_config(cfg: CN) -> CN:
    """Add ``MODEL.PROMPT_SEG.EFFICIENTVIT`` and ``MODEL.PROMPT_SEG.DISTILL`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    if "PROMPT_SEG" not in cfg.MODEL:
        cfg.MODEL.PROMPT_SEG = CN()
    node = cfg.MODEL.PROMPT_SEG

    # EfficientViT-SAM encoders (MODEL.PROMPT_SEG.ENCODER "efficientvit_sam_l0" / "_tiny").
    node.EFFICIENTVIT = CN()
    # Encoder weights ("" = random init): the official l0.pt, a DAFT model file, a
    # PromptSegDistiller checkpoint (its student.* keys) or a bare encoder state dict.
    node.EFFICIENTVIT.WEIGHTS = ""
    # Raise, listing the keys, unless every encoder key loads with its shape.
    node.EFFICIENTVIT.STRICT = True
    # Side E of the [N, 256, E, E] embedding every neck input is resized to (64: SAM's decoder).
    node.EFFICIENTVIT.EMBEDDING_SIZE = 64

    # Distillation (META_ARCHITECTURE "PromptSegDistiller"): MSE between the embeddings of the
    # student (MODEL.PROMPT_SEG.ENCODER, trained) and of a frozen teacher.
    node.DISTILL = CN()
    # Teacher encoder, by its name in PROMPT_SEG_ENCODER_REGISTRY (built from a copy of the
    # config whose MODEL.PROMPT_SEG.ENCODER is this name).
    node.DISTILL.TEACHER_ENCODER = ""
    # Teacher weights: any checkpoint holding the teacher encoder's state dict, bare or under one
    # prefix (found by matching, e.g. a PromptSegmentor checkpoint); "" keeps the builder's own.
    node.DISTILL.TEACHER_WEIGHTS = ""
    # Seed the teacher is built under (its random init matters only without TEACHER_WEIGHTS).
    node.DISTILL.TEACHER_SEED = 1
    return cfg
