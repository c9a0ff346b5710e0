"""The ``MODEL.SPARSE_RCNN`` keys, with the official Sparse R-CNN defaults.

Defaults follow ``PeizeSun/SparseR-CNN`` ``sparsercnn/config.py`` (node ``MODEL.SparseRCNN`` there)
and, for the RoI pooler and feature names, its ``Base-SparseRCNN.yaml`` (which sets them on
``MODEL.ROI_HEADS`` / ``MODEL.ROI_BOX_HEAD`` there; here the family node holds them). The official
solver settings (AdamW, full-model clipping) are in ``configs/sparse_rcnn/Base-SparseRCNN.yaml``,
not in the defaults, so that adding this node changes no other family.
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config
from vertspine.data.class_count import register_num_classes_key

__all__ = ["add_sparse_rcnn_config"]

register_num_classes_key("SparseRCNN", "MODEL.SPARSE_RCNN.NUM_CLASSES")


@register_config
def add_sparse_rcnn_config(cfg: CN) -> CN:
    """Add ``MODEL.SPARSE_RCNN`` with every key and its default to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.MODEL.SPARSE_RCNN = node = CN()
    # Foreground classes K (no background class with the focal loss).
    node.NUM_CLASSES = 80
    # Learned proposals N per image (boxes and features); the "100pro" configs use 100.
    node.NUM_PROPOSALS = 300
    # Backbone features pooled for each proposal; their channels must equal HIDDEN_DIM.
    node.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    # RoI pooling: output side, sampling points per bin side and detectron2 pooler type.
    node.POOLER_RESOLUTION = 7
    node.POOLER_SAMPLING_RATIO = 2
    node.POOLER_TYPE = "ROIAlignV2"

    # Dynamic head: attention heads, dropout, FFN width, activation ("relu" or "gelu").
    node.NHEADS = 8
    node.DROPOUT = 0.0
    node.DIM_FEEDFORWARD = 2048
    node.ACTIVATION = "relu"
    # Width of the proposal features (C).
    node.HIDDEN_DIM = 256
    # [Linear, LayerNorm, ReLU] blocks before the class / box predictors.
    node.NUM_CLS = 1
    node.NUM_REG = 3
    # Refinement stages of the head (each one a RCNNHead).
    node.NUM_HEADS = 6
    # DynamicConv: number of dynamic layers (must be 2, as upstream) and their inner width.
    node.NUM_DYNAMIC = 2
    node.DIM_DYNAMIC = 64

    # Loss weights, also the Hungarian matching cost weights.
    node.CLASS_WEIGHT = 2.0
    node.GIOU_WEIGHT = 2.0
    node.L1_WEIGHT = 5.0
    # Also supervise stages 0..NUM_HEADS-2 (losses suffixed _0, _1, ...).
    node.DEEP_SUPERVISION = True
    # Weight of the no-object class in the softmax cross-entropy (only when USE_FOCAL is False).
    node.NO_OBJECT_WEIGHT = 0.1

    # Sigmoid focal loss (True) or softmax cross-entropy with a no-object class (False).
    node.USE_FOCAL = True
    # Focal loss alpha and gamma.
    node.ALPHA = 0.25
    node.GAMMA = 2.0
    # Initial foreground probability of every class logit (focal loss bias prior).
    node.PRIOR_PROB = 0.01

    # Inference: detections scoring below this are dropped (0 = keep all, as upstream).
    node.SCORE_THRESH_TEST = 0.0
    # Inference: IoU of the class-wise NMS after top-k (0 = off, as upstream; VinDr used 0.7).
    node.NMS_THRESH = 0.0
    return cfg
