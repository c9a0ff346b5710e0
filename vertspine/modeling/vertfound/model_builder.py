"""From ``MODEL.VERTFOUND`` keys to the keyword arguments of :class:`~.vertfound.VertFound`."""
import json
import logging
import os
from typing import Any, Dict, List

from detectron2.data import DatasetCatalog, MetadataCatalog

from .box_sources import load_detections
from .cache import EmbeddingCache
from .clip_encoder import build_clip
from .sam_encoder import build_vertfound_sam

__all__ = ["dataset_level_names", "vertfound_parts_from_config"]

logger = logging.getLogger(__name__)


def dataset_level_names(dataset_names: List[str]) -> List[str]:
    """``level_names`` (else ``thing_classes``) metadata of the first dataset that has them,
    loading a dataset when its metadata is only filled at load time."""
    for name in dataset_names:
        metadata = MetadataCatalog.get(name)
        names = metadata.get("level_names", None) or metadata.get("thing_classes", None)
        if not names and name in DatasetCatalog:
            DatasetCatalog.get(name)  # detectron2's COCO loader sets thing_classes
            names = metadata.get("level_names", None) or metadata.get("thing_classes", None)
        if names:
            return list(names)
    return []


def vertfound_parts_from_config(cfg) -> Dict[str, Any]:
    """Build SAM, CLIP, the tokenizer, detections and cache, and gather every argument.

    Raises:
        ValueError: a key with a bad value (named in the message).
    """
    node = cfg.MODEL.VERTFOUND
    sam = build_vertfound_sam(node.SAM.MODEL_TYPE, node.SAM.CHECKPOINT, node.SAM.INIT_SEED,
                              node.SAM.TINY)
    clip, tokenizer = build_clip(node.CLIP.MODEL_NAME, node.CLIP.MODEL_CONFIG,
                                 node.CLIP.PRETRAINED, node.CLIP.QUICK_GELU, node.CLIP.INIT_SEED)
    names = list(node.TEXT.CLASS_NAMES) or dataset_level_names(
        list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST))
    if not names:
        raise ValueError("VertFound found no level names: set MODEL.VERTFOUND.TEXT.CLASS_NAMES, "
                         "or register the datasets with level_names/thing_classes metadata.")
    if len(names) != node.NUM_CLASSES:
        raise ValueError(f"MODEL.VERTFOUND.NUM_CLASSES is {node.NUM_CLASSES} but the level names "
                         f"are {len(names)}: {names}. Set NUM_CLASSES {len(names)}.")
    detections = None
    if node.BOX_SOURCE == "detections":
        detections = load_detections(node.DETECTIONS_JSON, node.DETECTION_SCORE_THRESH)
    cache = EmbeddingCache.load(node.CACHE.PATH) if node.CACHE.PATH else None
    photometric = (tuple(node.AUG.BRIGHTNESS) != (1.0, 1.0)
                   or tuple(node.AUG.CONTRAST) != (1.0, 1.0))
    loss = node.LOSS
    return {
        "sam": sam,
        "clip": clip,
        "tokenizer": tokenizer,
        "class_names": names,
        "clip_layers": list(node.CLIP.LAYERS),
        "clip_resize": node.CLIP.RESIZE,
        "templates": list(node.TEXT.TEMPLATES),
        "expand_names": node.TEXT.EXPAND_NAMES,
        "freeze_sam": node.SAM.FROZEN,
        "freeze_clip_image": node.CLIP.FREEZE_IMAGE,
        "freeze_clip_text": node.CLIP.FREEZE_TEXT,
        "fusion_heads": node.FUSION.NUM_HEADS,
        "fusion_ffn_dim": node.FUSION.FFN_DIM,
        "fusion_dropout": node.FUSION.DROPOUT,
        "self_attention": node.FUSION.SELF_ATTENTION,
        "box_position": node.FUSION.BOX_POSITION,
        "logit_scale": node.LOGIT_SCALE,
        "learn_logit_scale": node.LEARN_LOGIT_SCALE,
        "class_prior_prob": node.CLASS_PRIOR_PROB,
        "loss_weights": {"loss_focal": loss.FOCAL_WEIGHT, "loss_ot": loss.OT_WEIGHT,
                         "loss_order": loss.ORDER_WEIGHT},
        "focal_alpha": loss.FOCAL_ALPHA,
        "focal_gamma": loss.FOCAL_GAMMA,
        "ot_epsilon": loss.OT_EPSILON,
        "ot_iters": loss.OT_ITERS,
        "ot_tolerance": loss.OT_TOLERANCE,
        "ot_target": loss.OT_TARGET,
        "order_mode": loss.ORDER_MODE,
        "order_margin": loss.ORDER_MARGIN,
        "viterbi": node.DECODE.VITERBI,
        "gap_penalty": node.DECODE.GAP_PENALTY,
        "test_flip": node.DECODE.TEST_FLIP,
        "box_source": node.BOX_SOURCE,
        "detections": detections,
        "cache": cache,
        "use_cached_clip": not photometric,
        "input_format": cfg.INPUT.FORMAT,
        "box_chunk": node.SAM.BOX_CHUNK,
        "sam_engine": node.SAM.ENGINE,
        "sam_engine_cache_dir": node.SAM.ENGINE_CACHE_DIR or os.path.join(cfg.OUTPUT_DIR,
                                                                          "engines"),
        "sam_roi_size": node.FUSION.SAM_ROI_SIZE,
        "sam_roi_context": node.FUSION.SAM_ROI_CONTEXT,
        "sam_roi_shifts": tuple(node.FUSION.SAM_ROI_SHIFTS),
        "sources": {
            "sam_model_type": node.SAM.MODEL_TYPE,
            "sam_checkpoint": node.SAM.CHECKPOINT,
            "sam_seed": node.SAM.INIT_SEED,
            "clip_model": (json.dumps(node.CLIP.MODEL_CONFIG, sort_keys=True)
                           if node.CLIP.MODEL_CONFIG else node.CLIP.MODEL_NAME),
            "clip_pretrained": node.CLIP.PRETRAINED,
            "clip_seed": node.CLIP.INIT_SEED,
        },
    }
