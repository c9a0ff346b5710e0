"""Sparse R-CNN (Sun et al., CVPR 2021) as a vertspine model family.

Importing this package registers the ``SparseRCNN`` meta-architecture. Configure it with
:func:`add_sparse_rcnn_config` (``MODEL.SPARSE_RCNN``); load official checkpoints with
:func:`load_sparse_rcnn_checkpoint`.
"""
from .checkpoint import load_sparse_rcnn_checkpoint
from .config import add_sparse_rcnn_config
from .detector import SparseRCNN
from .head import DynamicConv, DynamicHead, RCNNHead
from .loss import SetCriterion
from .matcher import HungarianMatcher

__all__ = [
    "DynamicConv",
    "DynamicHead",
    "HungarianMatcher",
    "RCNNHead",
    "SetCriterion",
    "SparseRCNN",
    "add_sparse_rcnn_config",
    "load_sparse_rcnn_checkpoint",
]
