"""The image-classification keys: ``MODEL.IMAGE_CLASSIFIER`` (the model), ``MODEL.TIMM`` (the timm
backbone), ``INPUT.SQUARE_*`` (the fixed-size square of :class:`ImageLabelDatasetMapper`),
``TEST.CLASSIFICATION`` (the classification evaluator) and ``DATASETS.IMAGE_FOLDER``.

The family owns ``MODEL.IMAGE_CLASSIFIER``; the other keys sit where detectron2 users look for
them (backbone, input, test and dataset settings), each under a name no other family uses.
Defaults describe a binary classifier (one logit, BCE) pooling a ResNet's ``res5``; the YAMLs in
``configs/classification/`` choose the backbone, its normalisation and the schedule.
"""
from detectron2.config import CfgNode as CN

from vertspine.config import register_config
from vertspine.data.class_count import register_num_classes_key

__all__ = ["add_image_classifier_config"]

register_num_classes_key("ImageClassifier", "MODEL.IMAGE_CLASSIFIER.NUM_CLASSES", image_level=True)


@register_config
def add_image_classifier_config(cfg: CN) -> CN:
    """Add every image-classification key, with its default, to ``cfg`` (in place).

    Args:
        cfg: a detectron2 config.
    Returns:
        The same config, for chaining.
    """
    cfg.MODEL.IMAGE_CLASSIFIER = node = CN()
    # Logits: 1 = binary (one logit, sigmoid, BCE; positive = class_names[1]); C >= 2 = softmax CE.
    node.NUM_CLASSES = 1
    # Backbone output that is pooled (e.g. "res5" of a detectron2 ResNet, "final" of a timm one).
    node.IN_FEATURE = "res5"
    # Global pooling over the image's valid (unpadded) feature cells: "avg" or "max".
    node.POOL = "avg"
    # Widths of hidden FC layers (ReLU, dropout) before the output layer; [] = one FC ("1-fcn").
    node.HIDDEN_DIMS = []
    # Dropout probability before every FC layer (0 = none).
    node.DROPOUT = 0.0
    # Linear probe: backbone parameters frozen and the backbone kept in eval mode (BN stats frozen).
    node.FREEZE_BACKBONE = False
    # Binary only: BCE weight of positive examples (e.g. #negatives / #positives); 0 = unweighted.
    node.POS_WEIGHT = 0.0
    # Softmax only: one cross-entropy weight per class; [] = unweighted.
    node.CLASS_WEIGHTS = []

    cfg.MODEL.TIMM = timm_node = CN()
    # timm model name for build_timm_backbone, e.g. "densenet121", "resnet50", "resnet18".
    timm_node.NAME = "resnet18"
    # Download timm's pretrained weights (needs the Hugging Face hub; False offline).
    timm_node.PRETRAINED = False
    # feature_info indices returned as "stage{i+1}" ([] = all); "final" is always the deepest one.
    timm_node.OUT_INDICES = []

    # ImageLabelDatasetMapper: after the resize, fit images into a SIZE x SIZE square (0 = off).
    cfg.INPUT.SQUARE_SIZE = 0
    # "pad": shrink so the long side fits, then pad centred; "crop": grow so the short side fits,
    # then crop the centre. Both keep the aspect ratio and are deterministic.
    cfg.INPUT.SQUARE_MODE = "pad"
    # Pixel value of the padding (in INPUT.FORMAT, before normalisation).
    cfg.INPUT.SQUARE_PAD_VALUE = 0

    # ImageFolder datasets registered at setup: [name, root] (classes sorted) or
    # [name, root, [class, ...]] (label order), for <root>/<class>/<image> files.
    cfg.DATASETS.IMAGE_FOLDER = []

    cfg.TEST.CLASSIFICATION = test_node = CN()
    # Fixed decision threshold on p(positive) for non-validation splits (< 0 = use THRESHOLD_FILE).
    test_node.THRESHOLD = -1.0
    # JSON holding the threshold chosen (Youden's J) on the validation split; "" means
    # OUTPUT_DIR/classification_threshold.json. Evaluating a validation split (re)writes it.
    test_node.THRESHOLD_FILE = ""
    # Bootstrap resamples for the 95% percentile confidence intervals (0 = no intervals).
    test_node.BOOTSTRAP = 1000
    # Seed of the bootstrap resampling.
    test_node.BOOTSTRAP_SEED = 0
    return cfg
