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
import os
import re
from typing import Dict, List, Mapping, Tuple, Union

import torch
from torch import Tensor

from vertspine.utils.checkpoint_report import CheckpointReport  # re-exported here

__all__ = ["CheckpointReport", "backbone_loaded_fully", "convert_torchvision_to_timm",
           "read_state_dict"]

# torchvision's own fix for old DenseNet checkpoints (torchvision/models/densenet.py).
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
    r"((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def read_state_dict(path_or_state_dict: Union[str, os.PathLike, Mapping]) -> Dict[str, Tensor]:
    """A state dict from a file (``torch.load``, CPU, weights only), a ``{"model": sd}``
    checkpoint, a ``{"state_dict": sd}`` one or a bare state dict; a ``module.`` prefix on every
    key is removed."""
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path_or_state_dict = torch.load(path_or_state_dict, map_location="cpu", weights_only=True)
    state = path_or_state_dict
    for wrapper in ("model", "state_dict"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


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
        (state dict in target names, report). Shape mismatches are skipped, not loaded. The
        ImageNet classifier (``classifier.*``/``fc.*``) is always among the unexpected keys;
        :func:`backbone_loaded_fully` says whether every backbone key was loaded.
    """
    report = CheckpointReport(title="torchvision -> timm backbone checkpoint")
    converted: Dict[str, Tensor] = {}
    for key, value in source.items():
        name = next((c for c in _candidates(key) if c in target), None)
        if name is None:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[name].shape):
            report.skipped[key] = (f"checkpoint {list(value.shape)}, "
                                   f"model {name} {list(target[name].shape)}")
        else:
            converted[name] = value
            report.loaded.append(name)
    report.missing = [key for key in target if key not in converted]
    return converted, report


def backbone_loaded_fully(report: CheckpointReport) -> bool:
    """Every backbone key loaded (unexpected checkpoint keys, e.g. the classifier, allowed)."""
    return not (report.skipped or report.missing)
