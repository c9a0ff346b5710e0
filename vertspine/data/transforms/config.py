"""The ``INPUT.AUTOAUGMENT`` keys: AutoAugment-for-detection in the default dataset mapper."""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_autoaugment_config"]


@register_config
def add_autoaugment_config(cfg: CN) -> CN:
    """Add ``INPUT.AUTOAUGMENT`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.INPUT.AUTOAUGMENT = node = CN()
    # Apply an AutoAugment-for-detection policy after the resize, in training only.
    node.ENABLED = False
    # Policy name: "v2" (15 x 3 operations, as VinDr-SpineXR) or "v0" (the paper's 5 x 2).
    node.POLICY = "v2"
    # Image side (px) at which TF's pixel constants (translate 250, cutout 100) apply unscaled;
    # they are multiplied by max(H, W) / REFERENCE_SIZE (640 = COCO's longest side).
    node.REFERENCE_SIZE = 640
    return cfg
