"""3D vessel segmentation (vesselFM): a MONAI DynUNet with one sigmoid logit, sliding-window
inference with test-time augmentation and post-processing, vesselFM's weight files.

Importing this package registers the family's modules (see each module's docstring).
"""
from .weights import load_vesselfm_weights, vesselfm_state_dict

__all__ = ["load_vesselfm_weights", "vesselfm_state_dict"]
