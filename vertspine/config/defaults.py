"""The keys vertspine adds to detectron2's config, each with its meaning.

Every tool and ``train_net.py`` calls :func:`add_vertspine_config` before ``merge_from_file``, so
no vertspine YAML meets "Non-existent config key". Model families (and data/evaluation parts with
keys of their own) add their node (``MODEL.VERTFOUND``, ``MODEL.SPARSE_RCNN``, ...) by decorating
their ``add_<family>_config`` with :func:`register_config` in the module that defines it; importing
the family registers it, and no list here names the families.
"""
from typing import Callable, List

from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

__all__ = ["add_vertspine_config", "get_vertspine_cfg", "register_config"]

ConfigAdder = Callable[[CN], CN]
_REGISTERED_CONFIGS: List[ConfigAdder] = []


def register_config(add_config: ConfigAdder) -> ConfigAdder:
    """Register ``add_config(cfg)``, called by every :func:`add_vertspine_config` (a decorator).

    Registering the same function twice (a module imported again) keeps one entry.
    """
    if add_config not in _REGISTERED_CONFIGS:
        _REGISTERED_CONFIGS.append(add_config)
    return add_config


def _add_framework_config(cfg: CN) -> None:
    """Keys of the training framework shared by every family."""
    # Datasets registered from COCO json at setup: a list of [name, json_file, image_root].
    cfg.DATASETS.COCO_JSON = []
    # Number of classes each COCO_JSON dataset must have (0 = take it from the json).
    cfg.DATASETS.COCO_NUM_CLASSES = 0
    # Few-shot training: this many DATASETS.TRAIN records (0 = all), chosen by TRAIN_SUBSET_SEED
    # among the records sorted by image_id, named in the log (vertspine.data.train_subset).
    cfg.DATASETS.TRAIN_SUBSET_SIZE = 0
    # Seed of that choice (independent of SEED: the same cases in every run).
    cfg.DATASETS.TRAIN_SUBSET_SEED = 0

    # Dataset mapper class, by its name in vertspine.data.MAPPER_REGISTRY.
    cfg.INPUT.DATASET_MAPPER = "VertspineDatasetMapper"
    # Train/test loader builder, by its name in vertspine.data.LOADER_REGISTRY: "DetectionLoader"
    # (detectron2's, one sample per record) or "PatchLoader" (PATCHES_PER_VOLUME per volume).
    cfg.DATALOADER.BUILDER = "DetectionLoader"

    # Volumes (INPUT.DATASET_MAPPER "VolumeMapper"): preprocessing and random patches.
    cfg.INPUT.VOLUME = CN()
    # Patch size in voxels, one entry per array axis after reorientation (volumes are padded to it).
    cfg.INPUT.VOLUME.ROI_SIZE = (96, 96, 96)
    # Patches drawn from a volume each time the training stream visits it.
    cfg.INPUT.VOLUME.PATCHES_PER_VOLUME = 4
    # Relative weights (positive, negative) of patch centres on label > 0 and on background.
    cfg.INPUT.VOLUME.POS_NEG_RATIO = (1.0, 1.0)
    # Axis codes the arrays are reoriented to (MONAI Orientationd), e.g. "RAS"; "" keeps the file's.
    cfg.INPUT.VOLUME.ORIENTATION = "RAS"
    # Voxel spacing in mm to resample to (MONAI Spacingd), one per axis; () keeps the file's.
    cfg.INPUT.VOLUME.TARGET_SPACING = ()
    cfg.INPUT.VOLUME.INTENSITY = CN()
    # "window" (ScaleIntensityRanged on WINDOW), "percentiles" (ScaleIntensityRangePercentilesd
    # on PERCENTILES, per volume) or "none" (values as read).
    cfg.INPUT.VOLUME.INTENSITY.MODE = "window"
    # Input values (a_min, a_max) mapped to OUTPUT_RANGE, e.g. Hounsfield units for CT.
    cfg.INPUT.VOLUME.INTENSITY.WINDOW = (-1000.0, 1000.0)
    # Lower and upper percentiles (0..100) of each volume mapped to OUTPUT_RANGE.
    cfg.INPUT.VOLUME.INTENSITY.PERCENTILES = (0.5, 99.5)
    # Output values (b_min, b_max) of the intensity scaling.
    cfg.INPUT.VOLUME.INTENSITY.OUTPUT_RANGE = (0.0, 1.0)
    # Clip the scaled values to OUTPUT_RANGE.
    cfg.INPUT.VOLUME.INTENSITY.CLIP = True
    # Random transforms of training patches (MONAI dictionary transforms, after the crop; each
    # empty / 0 is off). vesselFM's fine-tuning: FLIP_AXES (0, 1), ZOOM (1.0, 1.3), SHEAR 0.4,
    # SMOOTH_SIGMA (0.5, 1.0), NOISE_STD 0.1, HISTOGRAM_SHIFT_POINTS (5, 15).
    cfg.INPUT.VOLUME.AUGMENT = CN()
    # Probability of each transform below (flips: each listed axis with this probability).
    cfg.INPUT.VOLUME.AUGMENT.PROB = 0.2
    # Array axes flipped (RandFlipd), e.g. (0, 1).
    cfg.INPUT.VOLUME.AUGMENT.FLIP_AXES = ()
    # (min, max) zoom factor (RandZoomd, trilinear image / nearest label, size kept).
    cfg.INPUT.VOLUME.AUGMENT.ZOOM = ()
    # Largest shear (RandAffined, all 6 shear terms in [-SHEAR, SHEAR], reflection padding).
    cfg.INPUT.VOLUME.AUGMENT.SHEAR = 0.0
    # (min, max) sigma in voxels of a gaussian smoothing of the image (RandGaussianSmoothd).
    cfg.INPUT.VOLUME.AUGMENT.SMOOTH_SIGMA = ()
    # Standard deviation of additive gaussian noise on the image (RandGaussianNoised).
    cfg.INPUT.VOLUME.AUGMENT.NOISE_STD = 0.0
    # (min, max) control points of a random histogram shift of the image (RandHistogramShiftd).
    cfg.INPUT.VOLUME.AUGMENT.HISTOGRAM_SHIFT_POINTS = ()

    # Optimizer: "SGD" (momentum SOLVER.MOMENTUM) or "ADAMW" (betas SOLVER.BETAS).
    cfg.SOLVER.OPTIMIZER = "SGD"
    # Adam/AdamW (beta1, beta2).
    cfg.SOLVER.BETAS = (0.9, 0.999)
    # Learning-rate factor of model.backbone's parameters (official Sparse R-CNN key; 1 = off).
    cfg.SOLVER.BACKBONE_MULTIPLIER = 1.0
    # CLIP_GRADIENTS.CLIP_TYPE also accepts "full_model": one norm over all parameters.
    # Learning rate stepped on a validation metric (vertspine.engine.plateau): the schedule of
    # LR_SCHEDULER_NAME times a scale, multiplied by FACTOR when METRIC (an evaluation results
    # key, e.g. "prompt_seg/DSC"; "" = off; needs TEST.EVAL_PERIOD) has not improved by a
    # relative THRESHOLD for more than PATIENCE evaluations in a row; never below MIN_SCALE.
    cfg.SOLVER.PLATEAU = CN()
    cfg.SOLVER.PLATEAU.METRIC = ""
    cfg.SOLVER.PLATEAU.MODE = "max"
    cfg.SOLVER.PLATEAU.FACTOR = 0.5
    cfg.SOLVER.PLATEAU.PATIENCE = 2
    cfg.SOLVER.PLATEAU.THRESHOLD = 1e-4
    cfg.SOLVER.PLATEAU.MIN_SCALE = 0.0

    # Keep the checkpoint with the best value of an evaluation metric ("" = off),
    # e.g. "bbox/AP50"; written as OUTPUT_DIR/model_best.pth.
    cfg.TEST.BEST_CHECKPOINT_METRIC = ""
    # "max" when larger is better (AP), "min" when smaller is better (a loss).
    cfg.TEST.BEST_CHECKPOINT_MODE = "max"
    # Evaluator of every DATASETS.TEST, by its registered name ("" = each dataset's own
    # evaluator_type), for a model whose outputs that one does not read (a distiller: "embedding_mse").
    cfg.TEST.EVALUATOR_TYPE = ""
    # Iterations between validation-loss measurements on DATASETS.TEST[0] (0 = off).
    cfg.TEST.VAL_LOSS_PERIOD = 0
    # Batches of that dataset averaged for one validation-loss measurement.
    cfg.TEST.VAL_LOSS_NUM_BATCHES = 10
    # --eval-only with weights that leave parameters of the model unloaded (another
    # architecture's checkpoint): False = an error naming them, True = evaluate them random.
    cfg.TEST.ALLOW_PARTIAL_WEIGHTS = False

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
    # --resume continues exactly: the loader's batches up to the checkpoint are drawn again and
    # dropped, and the torch/numpy/python random number generators are set to the checkpoint's
    # (vertspine.engine.resume; needs SEED >= 0). False: a faster resume with another data order.
    cfg.VERTSPINE.EXACT_RESUME = True


def add_vertspine_config(cfg: CN) -> CN:
    """Add every vertspine key, with its default, to a detectron2 config (in place).

    Args:
        cfg: a detectron2 config, usually from :func:`detectron2.config.get_cfg`.
    Returns:
        The same config, for chaining.
    """
    _add_framework_config(cfg)
    for add_config in _REGISTERED_CONFIGS:
        add_config(cfg)
    return cfg


def get_vertspine_cfg() -> CN:
    """A fresh detectron2 config with every vertspine key added."""
    return add_vertspine_config(get_cfg())
