"""The ``TEST.PROMPT_SEG`` keys of the box-prompted segmentation evaluator (``"prompt_seg"``)."""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_prompt_seg_eval_config"]


@register_config
def add_prompt_seg_eval_config(cfg: CN) -> CN:
    """Add ``TEST.PROMPT_SEG`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.TEST.PROMPT_SEG = node = CN()
    # NSD tolerance in px for 2D images (the challenge's 2).
    node.NSD_TOLERANCE_2D = 2.0
    # NSD tolerance in mm for 3D volumes and their slices, with the voxel spacing (challenge: 2).
    node.NSD_TOLERANCE_3D = 2.0
    # NSD of 2D images: "contour" (the 2D boundary) or "slab" (a one-slice volume whose flat
    # faces count as surface: the challenge's script, only to compare with its leaderboard).
    node.PLANAR_NSD = "contour"
    # A case whose mean DSC (0-1) is not above this gets NSD 0 (the challenge's 0.2); < 0 = off.
    node.GATE_DSC = -1.0
    # PNG overlays (ground-truth contours green, prediction red) of the first cases each process
    # evaluates, written to OUTPUT_DIR/inference/<dataset>/prompt_seg_overlays; 0 = none.
    node.NUM_OVERLAYS = 4
    return cfg
