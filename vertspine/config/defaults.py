"""The keys vertspine adds to detectron2's config, each with its meaning.

Every tool and ``train_net.py`` calls :func:`add_vertspine_config` before ``merge_from_file``, so
no vertspine YAML meets "Non-existent config key". Model families add their own node
(``MODEL.VERTFOUND``, ``MODEL.SPARSE_RCNN``, ...) through an ``add_<family>_config`` listed in
``_FAMILY_CONFIGS``.
"""
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from vertspine.modeling.classification import add_image_classifier_config
from vertspine.modeling.lvmmed import add_lvmmed_config
from vertspine.modeling.sparse_rcnn import add_sparse_rcnn_config
from vertspine.modeling.vertfound import add_vertfound_config
from vertspine.data.transforms.config import add_autoaugment_config
from vertspine.evaluation.config import add_vertebra_level_config

__all__ = ["add_vertspine_config", "get_vertspine_cfg"]


def _add_framework_config(cfg: CN) -> None:
    """Keys of the training framework shared by every family."""
    # Datasets registered from COCO json at setup: a list of [name, json_file, image_root].
    cfg.DATASETS.COCO_JSON = []
    # Number of classes each COCO_JSON dataset must have (0 = take it from the json).
    cfg.DATASETS.COCO_NUM_CLASSES = 0

    # Dataset mapper class, by its name in vertspine.data.MAPPER_REGISTRY.
    cfg.INPUT.DATASET_MAPPER = "VertspineDatasetMapper"

    # Optimizer: "SGD" (momentum SOLVER.MOMENTUM) or "ADAMW" (betas SOLVER.BETAS).
    cfg.SOLVER.OPTIMIZER = "SGD"
    # Adam/AdamW (beta1, beta2).
    cfg.SOLVER.BETAS = (0.9, 0.999)
    # Learning-rate factor of model.backbone's parameters (official Sparse R-CNN key; 1 = off).
    cfg.SOLVER.BACKBONE_MULTIPLIER = 1.0
    # CLIP_GRADIENTS.CLIP_TYPE also accepts "full_model": one norm over all parameters.

    # Keep the checkpoint with the best value of an evaluation metric ("" = off),
    # e.g. "bbox/AP50"; written as OUTPUT_DIR/model_best.pth.
    cfg.TEST.BEST_CHECKPOINT_METRIC = ""
    # "max" when larger is better (AP), "min" when smaller is better (a loss).
    cfg.TEST.BEST_CHECKPOINT_MODE = "max"
    # Iterations between validation-loss measurements on DATASETS.TEST[0] (0 = off).
    cfg.TEST.VAL_LOSS_PERIOD = 0
    # Batches of that dataset averaged for one validation-loss measurement.
    cfg.TEST.VAL_LOSS_NUM_BATCHES = 10

    # Exponential moving average of the weights (vertspine.engine.ema): updated every iteration,
    # used by the evaluations in training and by --eval-only (checkpoint entry "model_ema").
    cfg.MODEL_EMA = CN()
    cfg.MODEL_EMA.ENABLED = False
    # ema = DECAY * ema + (1 - DECAY) * weights: an average over about 1 / (1 - DECAY) iterations.
    cfg.MODEL_EMA.DECAY = 0.999

    # Settings of the vertspine framework itself.
    cfg.VERTSPINE = CN()
    # Iterations between progress lines (iteration, ETA, losses) and metrics.json/TensorBoard writes.
    cfg.VERTSPINE.LOG_PERIOD = 20


# One entry per model family: the families' add_<family>_config functions.
_FAMILY_CONFIGS = (
    _add_framework_config,
    add_autoaugment_config,
    add_vertebra_level_config,
    add_sparse_rcnn_config,
    add_image_classifier_config,
    add_lvmmed_config,
    add_vertfound_config,
)


def add_vertspine_config(cfg: CN) -> CN:
    """Add every vertspine key, with its default, to a detectron2 config (in place).

    Args:
        cfg: a detectron2 config, usually from :func:`detectron2.config.get_cfg`.
    Returns:
        The same config, for chaining.
    """
    for add_family_config in _FAMILY_CONFIGS:
        add_family_config(cfg)
    return cfg


def get_vertspine_cfg() -> CN:
    """A fresh detectron2 config with every vertspine key added."""
    return add_vertspine_config(get_cfg())
