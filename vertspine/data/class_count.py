"""The model's class count checked against the datasets it trains and tests on.

A ``NUM_CLASSES`` that differs from the dataset's category count trains silently wrong (extra
logits never supervised, or labels beyond the last logit). Each meta-architecture names the key
that holds its class count in :data:`NUM_CLASSES_KEYS`; model families add theirs.
"""
from typing import Dict, Iterable

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

__all__ = ["NUM_CLASSES_KEYS", "check_num_classes"]

NUM_CLASSES_KEYS: Dict[str, str] = {
    "GeneralizedRCNN": "MODEL.ROI_HEADS.NUM_CLASSES",
    "RetinaNet": "MODEL.RETINANET.NUM_CLASSES",
    "SparseRCNN": "MODEL.SPARSE_RCNN.NUM_CLASSES",
    "VertFound": "MODEL.VERTFOUND.NUM_CLASSES",
    "ImageClassifier": "MODEL.IMAGE_CLASSIFIER.NUM_CLASSES",
    "UNetSegmentor": "MODEL.LVMMED.UNET.NUM_CLASSES",  # foreground classes (thing_classes)
}
# Image classifiers: only datasets with evaluator_type "classification" are checked (a detection
# dataset read as abnormal-vs-normal keeps its lesion classes), and NUM_CLASSES 1 is binary
# (one logit for two classes).
_IMAGE_LEVEL = {"ImageClassifier"}


def _config_value(cfg: CfgNode, dotted_key: str):
    node = cfg
    for part in dotted_key.split("."):
        node = node[part]
    return node


def check_num_classes(cfg: CfgNode, dataset_names: Iterable[str]) -> None:
    """Raise when a loaded dataset's ``thing_classes`` count differs from the model's.

    Call after the datasets were loaded (their metadata then holds ``thing_classes``).

    Raises:
        ValueError: naming the dataset, its classes, the config key and the value to set.
    """
    key = NUM_CLASSES_KEYS.get(cfg.MODEL.META_ARCHITECTURE)
    if key is None:
        return
    expected = _config_value(cfg, key)
    image_level = cfg.MODEL.META_ARCHITECTURE in _IMAGE_LEVEL
    for name in dataset_names:
        metadata = MetadataCatalog.get(name)
        classes = metadata.get("thing_classes", None)
        if image_level and (metadata.get("evaluator_type", None) != "classification"
                            or (expected == 1 and classes is not None and len(classes) == 2)):
            continue
        if classes is not None and len(classes) != expected:
            raise ValueError(
                f"Dataset '{name}' has {len(classes)} classes {list(classes)}, but {key} is "
                f"{expected}. Set {key} {len(classes)} (in the YAML or on the command line)."
            )
