"""The ``MODEL.VESSEL.INFERENCE`` keys: how :class:`~.meta_arch.VesselSegmentor` and
``tools/segment_vessels.py`` turn a volume into vessel probabilities and a mask
(:class:`~.inference.VesselInference`).

Set elsewhere, and shared with training so that one setting holds for val, test and the tool:
the intensity scaling (``INPUT.VOLUME.INTENSITY``: ``MODE "percentiles"``, ``PERCENTILES``, done by
``VolumeMapper``) and the sliding window (``MODEL.SEGMENTOR.SLIDING_WINDOW``: ROI, overlap, batch,
blending).
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config

__all__ = ["add_vessel_inference_config"]


@register_config
def add_vessel_inference_config(cfg: CN) -> CN:
    """Add ``MODEL.VESSEL.INFERENCE`` with every key and its default to ``cfg`` (in place);
    ``MODEL.VESSEL`` is created only when no other part of the family made it.

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    if "VESSEL" not in cfg.MODEL:
        cfg.MODEL.VESSEL = CN()
    cfg.MODEL.VESSEL.INFERENCE = node = CN()
    # A voxel is vessel where its sigmoid probability is >= THRESHOLD (vesselFM: > 0.5 at
    # inference, >= 0.62 in fine-tuning; one value here for evaluation and the tool).
    node.THRESHOLD = 0.5
    # Connected vessel components (26-connectivity) with fewer voxels than this are removed from
    # the mask; 0 keeps every component (vesselFM's optional post-processing uses 500).
    node.MIN_COMPONENT_SIZE = 0
    # Voxel spacing in mm (one per array axis) the network sees: the volume is resampled to it
    # (trilinear) and the logits back onto the input grid; [] infers on the input grid.
    node.TARGET_SPACING = []
    # Run the network under torch.autocast bfloat16 (CPU or CUDA); the windows' logits are
    # blended and merged in float32. Measured faster on CPU by scripts/benchmark_vessels.py.
    node.AUTOCAST_BF16 = False
    # Test-time augmentation: every scale x (no flip + every flip) is one view; the views'
    # logits are averaged on the input grid before the sigmoid.
    node.TTA = CN()
    # Flips, each a list of array axes (0, 1, 2) flipped together, e.g. [[0], [1], [2]].
    node.TTA.FLIPS = []
    # Zoom factors of the volume (0.5 halves every side; trilinear), e.g. [0.5, 1.0, 1.5].
    node.TTA.SCALES = [1.0]
    return cfg
