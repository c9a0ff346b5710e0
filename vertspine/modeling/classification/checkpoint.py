"""torchvision classification checkpoints (DenseNet, ResNet) loaded into timm backbones.

Key names: timm's full DenseNet and ResNet models use torchvision's names (``features.conv0``,
``features.denseblock1.denselayer1.norm1``, ``conv1``, ``layer1.0.bn1``, ...). Two differences
remain: (1) old torchvision DenseNet files write ``denselayer1.norm.1`` for ``norm1`` (torchvision
renames these when loading; so does :func:`convert_torchvision_to_timm`); (2) timm's
``features_only`` wrapper flattens top-level ``nn.Sequential`` children, so ``features.conv0``
becomes ``features_conv0`` (ResNet keys are unchanged). The classifier (``classifier.*`` /
``fc.*``) has no place in a backbone and is reported as unexpected.

:class:`ImageClassifier` applies this conversion when ``MODEL.WEIGHTS`` holds no ``backbone.``
keys, so ``MODEL.WEIGHTS path/to/torchvision_densenet121.pth`` loads directly.
"""
import re
from typing import Dict, List, Mapping, Tuple

from torch import Tensor

from vertspine.layers.weights import compare_state_dicts
from vertspine.utils.checkpoint_report import CheckpointReport

__all__ = ["backbone_loaded_fully", "convert_torchvision_to_timm"]

# torchvision's own fix for old DenseNet checkpoints (torchvision/models/densenet.py).
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def _candidates(key: str) -> List[str]:
    """Names a torchvision key may have in timm's features_only model."""
    match = _OLD_DENSENET_KEY.match(key)
    if match:
        key = match.group(1) + match.group(2)
    parts = key.split(".", 2)
    flattened = [f"{parts[0]}_{parts[1]}" + (f".{parts[2]}" if len(parts) > 2 else "")] \
        if len(parts) > 1 else []
    return [key] + flattened


def convert_torchvision_to_timm(
    source: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> Tuple[Dict[str, Tensor], CheckpointReport]:
    """Map torchvision DenseNet/ResNet keys onto a timm ``features_only`` model's keys.

    Args:
        source: torchvision state dict, e.g. ``torchvision.models.densenet121().state_dict()``.
        target: the timm feature model's ``state_dict()`` (names and shapes to match).
    Returns:
        (state dict in target names, report in target names). Shape mismatches are skipped,
        not loaded. The ImageNet classifier (``classifier.*``/``fc.*``) is always among the
        unexpected keys; :func:`backbone_loaded_fully` says whether every backbone key was
        loaded.
    """
    renamed = {next((c for c in _candidates(key) if c in target), key): value
               for key, value in source.items()}
    report, converted = compare_state_dicts(target, renamed,
                                            "torchvision -> timm backbone checkpoint")
    return converted, report


def backbone_loaded_fully(report: CheckpointReport) -> bool:
    """Every backbone key loaded (unexpected checkpoint keys, e.g. the classifier, allowed)."""
    return not (report.skipped or report.missing)
