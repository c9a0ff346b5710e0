"""3D vessel segmentation (vesselFM): a MONAI DynUNet with one sigmoid logit, sliding-window
inference with test-time augmentation and post-processing, vesselFM's weight files.

Importing this package registers the family's modules (see each module's docstring).
"""
from .inference import VesselInference, remove_small_components
from .inference_config import add_vessel_inference_config
from .meta_arch import VesselSegmentor  # registers "VesselSegmentor"
from .weights import load_vesselfm_weights, vesselfm_state_dict

__all__ = [
    "VesselInference",
    "VesselSegmentor",
    "add_vessel_inference_config",
    "load_vesselfm_weights",
    "remove_small_components",
    "vesselfm_state_dict",
]
