"""The ``TEST.VERTEBRA_LEVEL`` keys of the vertebra-level evaluator."""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_vertebra_level_config"]


@register_config
def add_vertebra_level_config(cfg: CN) -> CN:
    """Add ``TEST.VERTEBRA_LEVEL`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.TEST.VERTEBRA_LEVEL = node = CN()
    # A detector box (gt_indices -1 or absent) matches a ground-truth vertebra at IoU >= this.
    node.IOU_THRESHOLD = 0.5
    # Detector boxes scoring below this are not matched (boxes prompted with GT always are).
    node.SCORE_THRESHOLD = 0.0
    # Also run COCO box AP (DatasetEvaluators of COCO and vertebra-level evaluators).
    node.WITH_COCO_AP = False
    return cfg
