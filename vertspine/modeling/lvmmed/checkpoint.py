"""Loading LVM-Med (and ImageNet / SAM) encoder checkpoints into vertspine backbones.

Three key layouts (``MODEL.LVMMED.WEIGHTS_LAYOUT``):

- ``torchvision_resnet50``: torchvision ResNet names (``conv1``, ``bn1``,
  ``layerN.i.{convK,bnK,downsample.0/1}``, ``fc``), the layout of ``lvmmed_resnet.torch`` and of
  torchvision's ImageNet files. Converted to detectron2's ResNet names (:func:`torchvision_to_d2`)
  for the detectron2 backbones; ``fc.*`` is dropped. (The segmentation family's U-Net
  loads this layout into smp's encoder under its own names.)
- ``sam_vit_b``: SAM image-encoder names (``patch_embed.proj``, ``blocks.i.*``, ``neck.0-3``), the
  layout of ``lvmmed_vit.pth``. A full SAM checkpoint is accepted: its ``image_encoder.*`` keys
  are taken (prefix removed) and the prompt encoder / mask decoder keys dropped
  (:func:`vertspine.layers.sam.sam_state_for`, shared with every SAM loader).
- ``detectron2``: the target module's own names, optionally under ``backbone.`` or
  ``backbone.bottom_up.`` (a vertspine / detectron2 model checkpoint).

Files are read by :func:`vertspine.utils.state_dict.read_state_dict`. Every load returns an
:class:`EncoderCheckpointReport`; with ``strict`` any missing, unexpected or mis-shaped key raises
a ``ValueError`` naming the keys.
"""
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Mapping, Tuple

from torch import Tensor, nn

from vertspine.layers.sam.checkpoint import sam_state_for
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

from .config import WEIGHTS_LAYOUTS

__all__ = ["EncoderCheckpointReport", "load_encoder_checkpoint", "torchvision_to_d2"]

logger = logging.getLogger(__name__)

_RESNET_BLOCK = re.compile(r"^layer(\d)\.(\d+)\.(.+)$")
_MISSING_HINT = ("Set MODEL.LVMMED.ENCODER_WEIGHTS to an existing file, or to \"\" for random "
                 "init.")


@dataclass
class EncoderCheckpointReport(CheckpointReport):
    """:class:`CheckpointReport` of an encoder load, plus what the layout conversion dropped.

    Attributes:
        source: the file (or "<state dict>") that was read.
        layout: its key layout.
        dropped: checkpoint keys removed on purpose before loading, each with the reason
            (classifier ``fc``, SAM prompt encoder / mask decoder, BN batch counters, unused
            neck or pruned ResNet stages). They do not make the report incomplete.
    """

    source: str = "<state dict>"
    layout: str = ""
    dropped: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        body = super().__str__().split("\n", 1)
        counts = body[0].split(": ", 1)[1]
        lines = [f"Encoder checkpoint {self.source} (layout {self.layout}): {counts[:-1]}, "
                 f"{len(self.dropped)} dropped by the conversion."]
        for reason, count in Counter(self.dropped.values()).items():
            example = next(key for key, why in self.dropped.items() if why == reason)
            lines.append(f"  dropped {count} key(s) such as {example}: {reason}")
        return "\n".join(lines + body[1:])


def torchvision_to_d2(key: str) -> str:
    """The detectron2 ResNet name of a torchvision ResNet key (``fc.*`` is returned unchanged).

    ``conv1`` -> ``stem.conv1``, ``bn1`` -> ``stem.conv1.norm``, ``layerN.i.convK`` ->
    ``res{N+1}.i.convK``, ``layerN.i.bnK`` -> ``res{N+1}.i.convK.norm``,
    ``layerN.i.downsample.0/1`` -> ``res{N+1}.i.shortcut`` / ``.shortcut.norm``.
    """
    if key.startswith("conv1."):
        return "stem." + key
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1."):]
    match = _RESNET_BLOCK.match(key)
    if match is None:
        return key
    stage, block, rest = int(match.group(1)) + 1, match.group(2), match.group(3)
    rest = re.sub(r"^bn(\d)\.", r"conv\1.norm.", rest)
    rest = rest.replace("downsample.0.", "shortcut.").replace("downsample.1.", "shortcut.norm.")
    return f"res{stage}.{block}.{rest}"


def _convert(state: Mapping[str, Tensor], layout: str,
             model_keys: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """The checkpoint renamed to the target module's names, and the keys dropped (by their
    checkpoint names)."""
    dropped: Dict[str, str] = {}
    if layout == "torchvision_resnet50":
        state = dict(state)
        for key in [k for k in state if k.startswith("fc.")]:
            dropped[key] = "torchvision classification head, not part of the encoder"
            del state[key]
        return {torchvision_to_d2(key): value for key, value in state.items()}, dropped
    if layout == "sam_vit_b":
        return sam_state_for(state, "image_encoder")
    for prefix in ("backbone.bottom_up.", "backbone."):  # layout == "detectron2"
        if not any(key in model_keys for key in state) and any(k.startswith(prefix) for k in state):
            dropped = {k: f"detectron2 model checkpoint: outside '{prefix}'"
                       for k in state if not k.startswith(prefix)}
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state), dropped


def _drop_unbuilt(key: str, module: nn.Module) -> str:
    """Why a checkpoint key has no counterpart by design ("" when it should have one)."""
    if key.endswith("num_batches_tracked"):
        return "BatchNorm batch counter; the model's norm layer (e.g. FrozenBN) has none"
    head = key.split(".", 1)[0]
    if re.fullmatch(r"res[2-5]", head) and not hasattr(module, head):
        return "ResNet stage not built (MODEL.RESNETS.OUT_FEATURES ends before it)"
    parts = key.split(".")
    if "neck" in parts:
        try:
            neck = module.get_submodule(".".join(parts[:parts.index("neck") + 1]))
        except AttributeError:
            neck = None
        if isinstance(neck, nn.Identity):
            return "SAM neck not used (MODEL.LVMMED.VIT.USE_NECK False)"
    return ""


def load_encoder_checkpoint(
    module: nn.Module,
    path_or_state_dict: StateDictSource,
    layout: str,
    *,
    strict: bool = True,
) -> EncoderCheckpointReport:
    """Convert an encoder checkpoint to ``module``'s names and load it.

    Args:
        module: the encoder to fill: a detectron2 ``ResNet``, or segment_anything's
            ``ImageEncoderViT`` (its names are the SAM layout).
        path_or_state_dict: a file (read by :func:`~vertspine.utils.state_dict.read_state_dict`)
            or a state dict.
        layout: one of ``WEIGHTS_LAYOUTS``.
        strict: raise when any key is missing, unexpected or of another shape.
    Returns:
        The report, also logged (as a warning when incomplete).
    Raises:
        ValueError: unknown layout; with ``strict``, the report naming the offending keys.
    """
    if layout not in WEIGHTS_LAYOUTS:
        raise ValueError(f"MODEL.LVMMED.WEIGHTS_LAYOUT '{layout}' is not one of {WEIGHTS_LAYOUTS}.")
    source = (str(path_or_state_dict) if isinstance(path_or_state_dict, (str, os.PathLike))
              else "<state dict>")
    expected = module.state_dict()
    raw = read_state_dict(path_or_state_dict, missing_hint=_MISSING_HINT)
    state, dropped = _convert(raw, layout, expected)
    report = EncoderCheckpointReport(source=source, layout=layout, dropped=dropped)
    renaming = layout == "torchvision_resnet50"
    renamed = {torchvision_to_d2(k): k for k in raw} if renaming else {}

    def named(key: str) -> str:  # the model's name, with the checkpoint's when they differ
        original = renamed.get(key, key)
        return key if original == key else f"{key} (checkpoint: {original})"

    loadable = {}
    for key, value in state.items():
        if key not in expected:
            reason = _drop_unbuilt(key, module)
            if reason:
                report.dropped[named(key)] = reason
            else:
                report.unexpected.append(named(key))
        elif value.shape != expected[key].shape:
            report.skipped[named(key)] = (f"checkpoint {list(value.shape)}, "
                                          f"model {list(expected[key].shape)}")
        else:
            loadable[key] = value
            report.loaded.append(key)
    report.missing = [key for key in expected
                      if key not in state and not key.endswith("num_batches_tracked")]
    if strict and not report.complete:
        raise ValueError(
            "Strict loading of the encoder checkpoint failed (MODEL.LVMMED.STRICT True).\n"
            f"{report}\n"
            "Check MODEL.LVMMED.WEIGHTS_LAYOUT and the backbone sizes (MODEL.RESNETS.*, "
            "MODEL.LVMMED.VIT.*), or set MODEL.LVMMED.STRICT False to load what matches.")
    module.load_state_dict(loadable, strict=False)
    logger.log(logging.INFO if report.complete else logging.WARNING, "%s", report)
    return report
