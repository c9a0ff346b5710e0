"""The model's class count checked against the datasets it trains and tests on.

A ``NUM_CLASSES`` that differs from the dataset's category count trains silently wrong (extra
logits never supervised, or labels beyond the last logit). Each meta-architecture names the key
that holds its class count with :func:`register_num_classes_key` (a model family does it in its
own package, on import); detectron2's detectors are registered here.
"""
from typing import Dict, Iterable, Set

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

__all__ = ["NUM_CLASSES_KEYS", "check_num_classes", "register_num_classes_key"]

# meta-architecture name -> dotted config key of its class count
NUM_CLASSES_KEYS: Dict[str, str] = {}
_IMAGE_LEVEL: Set[str] = set()


def register_num_classes_key(meta_architecture: str, key: str, *, image_level: bool = False) -> None:
    """Name the config key that holds ``meta_architecture``'s class count.

    Args:
        meta_architecture: the name registered in detectron2's ``META_ARCH_REGISTRY``.
        key: dotted config key, e.g. ``"MODEL.SPARSE_RCNN.NUM_CLASSES"``.
        image_level: an image classifier: only datasets with ``evaluator_type``
            "classification" are checked (a detection dataset read as abnormal-vs-normal keeps
            its lesion classes), and a count of 1 is binary (one logit for two classes).
    """
    NUM_CLASSES_KEYS[meta_architecture] = key
    if image_level:
        _IMAGE_LEVEL.add(meta_architecture)
    else:
        _IMAGE_LEVEL.discard(meta_architecture)


register_num_classes_key("GeneralizedRCNN", "MODEL.ROI_HEADS.NUM_CLASSES")
register_num_classes_key("RetinaNet", "MODEL.RETINANET.NUM_CLASSES")


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
