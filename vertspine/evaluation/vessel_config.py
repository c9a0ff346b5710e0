"""The ``TEST.VESSEL`` keys of the vessel evaluator (:mod:`.vessel`)."""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_vessel_evaluation_config", "vessel_evaluation_settings"]


@register_config
def add_vessel_evaluation_config(cfg: CN) -> CN:
    """Add ``TEST.VESSEL`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.TEST.VESSEL = node = CN()
    # NSD tolerance tau in mm: a surface voxel counts as matched within this distance (<=).
    node.NSD_TOLERANCE_MM = 1.0
    # AUROC and AP on the probabilities (sklearn over every voxel: about 3 s of the 4 s a 128^3
    # case takes on one CPU thread; False reports them as skipped).
    node.PROBABILITY_METRICS = True
    return cfg


def vessel_evaluation_settings(cfg: CN) -> CN:
    """``cfg.TEST.VESSEL``, or its defaults when the config lacks the node."""
    if "VESSEL" in cfg.TEST:
        return cfg.TEST.VESSEL
    return add_vessel_evaluation_config(CN({"TEST": CN()})).TEST.VESSEL
