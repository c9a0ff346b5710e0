"""add_sparse_rcnn_config: the official defaults (upstream sparsercnn/config.py and
Base-SparseRCNN.yaml), under one upper-case node."""
from vertspine.config import get_vertspine_cfg
from vertspine.modeling.sparse_rcnn import add_sparse_rcnn_config

OFFICIAL_DEFAULTS = {
    "NUM_CLASSES": 80, "NUM_PROPOSALS": 300, "IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "POOLER_RESOLUTION": 7, "POOLER_SAMPLING_RATIO": 2, "POOLER_TYPE": "ROIAlignV2",
    "NHEADS": 8, "DROPOUT": 0.0, "DIM_FEEDFORWARD": 2048, "ACTIVATION": "relu",
    "HIDDEN_DIM": 256, "NUM_CLS": 1, "NUM_REG": 3, "NUM_HEADS": 6, "NUM_DYNAMIC": 2,
    "DIM_DYNAMIC": 64, "CLASS_WEIGHT": 2.0, "GIOU_WEIGHT": 2.0, "L1_WEIGHT": 5.0,
    "DEEP_SUPERVISION": True, "NO_OBJECT_WEIGHT": 0.1, "USE_FOCAL": True, "ALPHA": 0.25,
    "GAMMA": 2.0, "PRIOR_PROB": 0.01,
    "SCORE_THRESH_TEST": 0.0, "NMS_THRESH": 0.0,  # vertspine / VinDr fork: both off
}


def test_defaults_are_the_official_ones():
    node = add_sparse_rcnn_config(get_vertspine_cfg()).MODEL.SPARSE_RCNN
    assert dict(node) == OFFICIAL_DEFAULTS


def test_other_defaults_are_untouched():
    plain = get_vertspine_cfg()
    added = add_sparse_rcnn_config(get_vertspine_cfg())
    for cfg in (plain, added):  # plain has the node too once add_vertspine_config includes it
        cfg.MODEL.pop("SPARSE_RCNN", None)
    assert added == plain
