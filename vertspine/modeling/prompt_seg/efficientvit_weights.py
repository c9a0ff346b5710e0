"""Weights of EfficientViT-SAM encoders: the official ``l0.pt``, DAFT's checkpoints, distilled
students.

Layouts read by :func:`load_efficientvit_sam_weights` (through the shared
:func:`~vertspine.utils.state_dict.read_state_dict`, which unwraps ``{"model": ...}`` /
``{"state_dict": ...}`` and a DataParallel ``module.`` prefix):

- a whole EfficientViT-SAM model, keys ``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``: the official ``l0.pt`` (mit-han-lab/efficientvit), DAFT's per-modality
  files and its ``medsam_lite_best.pth`` training checkpoints. The encoder's keys are converted
  (:func:`convert_official_encoder_keys`); the prompt encoder and mask decoder keys are
  segment-anything's and are returned, not loaded (the meta-architecture's SAM loader takes
  them);
- a :class:`~.distill.PromptSegDistiller` checkpoint: the student under ``student.`` in this
  package's own layout (its raw weights, the ``model`` entry, not ``model_ema``);
- a bare encoder state dict, official (``backbone.stages.0.op_list.0.conv.weight``) or ours.

DAFT's checkpoint folder (``models/`` of automl/CVPR24-MedSAM-on-Laptop) holds one whole-model
file per modality subset, ``<name>.pth`` with ``name`` in :data:`DAFT_MODEL_NAMES`, and the
fallback ``general.pth``: :func:`load_daft_checkpoints`.
"""
import logging
import os
import re
from typing import Callable, Dict, List, Mapping, NamedTuple, Sequence, Tuple

from torch import Tensor, nn

from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

__all__ = [
    "DAFT_MODEL_NAMES", "EfficientViTSamWeights", "convert_official_encoder_keys",
    "encoder_state_dict", "load_daft_checkpoints", "load_efficientvit_sam_weights",
]

logger = logging.getLogger(__name__)

# DAFT's model files (extract_modalities3D.sh, README step 4): modality subsets and the fallback.
DAFT_MODEL_NAMES = ("3D", "Dermoscopy", "Endoscopy", "Fundus", "Mammography", "Microscopy",
                    "OCT", "US", "XRay", "general")
_WHOLE_MODEL_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
_STUDENT_PREFIX = "student."

# Official EfficientViT-SAM image-encoder key -> this package's (timm's backbone names).
_KEY_RULES: List[Tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]] = [
    (re.compile(r"^backbone\.stages\.0\.op_list\.0\."), lambda m: "backbone.stem.in_conv."),
    (re.compile(r"^backbone\.stages\.0\.op_list\.(\d+)\."),
     lambda m: f"backbone.stem.res{int(m[1]) - 1}."),
    (re.compile(r"^backbone\.stages\.(\d+)\.op_list\.(\d+)\."),
     lambda m: f"backbone.stages.{int(m[1]) - 1}.blocks.{m[2]}."),
    (re.compile(r"^neck\.input_ops\.(\d+)\.op_list\.0\."), lambda m: f"neck.lateral.{m[1]}."),
    (re.compile(r"^neck\.middle\.op_list\.(\d+)\."), lambda m: f"neck.blocks.{m[1]}."),
    (re.compile(r"^neck\.output_ops\.0\.op_list\.0\.conv\."), lambda m: "neck.proj."),
]


class EfficientViTSamWeights(NamedTuple):
    """What :func:`load_efficientvit_sam_weights` did.

    Attributes:
        report: the encoder's keys: loaded, skipped, missing, unexpected.
        sam_parts: the file's ``prompt_encoder.*`` and ``mask_decoder.*`` tensors, keys as in
            the file (segment-anything's layout), for the meta-architecture's SAM loader; empty
            for encoder-only files.
    """

    report: CheckpointReport
    sam_parts: Dict[str, Tensor]


def convert_official_encoder_keys(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Official EfficientViT-SAM image-encoder keys (without ``image_encoder.``) -> this
    package's, e.g. ``backbone.stages.4.op_list.1.context_module.main.qkv.conv.weight`` ->
    ``backbone.stages.3.blocks.1.context_module.main.qkv.conv.weight``,
    ``neck.output_ops.0.op_list.0.conv.bias`` -> ``neck.proj.bias``. Keys no rule matches
    (``norm.weight``, ``norm.bias``) are kept."""
    converted = {}
    for key, value in state.items():
        for pattern, replace in _KEY_RULES:
            match = pattern.match(key)
            if match:
                key = replace(match) + key[match.end():]
                break
        converted[key] = value
    return converted


def encoder_state_dict(state: Mapping[str, Tensor]) -> Tuple[Dict[str, Tensor], Dict[str, Tensor],
                                                              List[str]]:
    """Split a checkpoint's tensors (any layout of the module docstring) into the encoder's, in
    this package's layout, the SAM parts, and the keys that are neither.

    Returns:
        ``(encoder_state, sam_parts, other_keys)``.
    """
    keys = list(state)
    if any(key.startswith(_WHOLE_MODEL_PARTS[0]) for key in keys):
        prefix = _WHOLE_MODEL_PARTS[0]
    elif any(key.startswith(_STUDENT_PREFIX) for key in keys):
        prefix = _STUDENT_PREFIX
    else:
        prefix = ""
    encoder = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    sam_parts = {key: value for key, value in state.items()
                 if prefix and key.startswith(_WHOLE_MODEL_PARTS[1:])}
    other = [key for key in keys if prefix and not key.startswith(prefix) and key not in sam_parts]
    if any(".op_list." in key for key in encoder):
        encoder = convert_official_encoder_keys(encoder)
    return encoder, sam_parts, other


def load_efficientvit_sam_weights(encoder: nn.Module, source: StateDictSource, *,
                                  strict: bool = True) -> EfficientViTSamWeights:
    """Load an EfficientViT-SAM checkpoint's encoder weights into ``encoder``, key for key.

    Args:
        encoder: an :class:`~.efficientvit_sam.EfficientViTSamEncoder`.
        source: a checkpoint path or loaded state dict (layouts: module docstring).
        strict: raise unless every encoder key is loaded with its shape and every key of the
            file is used (the SAM parts count as used: they are handed over).
    Returns:
        The report and the SAM parts handed over.
    Raises:
        ValueError: ``strict`` and the keys or shapes do not line up (the message lists them).
        FileNotFoundError, CheckpointReadError: from :func:`read_state_dict`.
    """
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the state dict"
    state, sam_parts, other = encoder_state_dict(read_state_dict(
        source, missing_hint="Download l0.pt from https://huggingface.co/han-cai/efficientvit-sam "
        "or set MODEL.PROMPT_SEG.EFFICIENTVIT.WEIGHTS to \"\"."))
    own = encoder.state_dict()
    report = CheckpointReport(title=f"EfficientViT-SAM encoder weights from {where}")
    report.missing = [key for key in own if key not in state]
    report.unexpected = [key for key in state if key not in own] + other
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            report.skipped[key] = f"file {tuple(value.shape)}, model {tuple(own[key].shape)}"
        elif key in own:
            report.loaded.append(key)
    if strict and not report.complete:
        raise ValueError(f"{report}\n{where} is not a checkpoint of this EfficientViT-SAM "
                         "variant (MODEL.PROMPT_SEG.ENCODER); name a matching file, or set "
                         "MODEL.PROMPT_SEG.EFFICIENTVIT.STRICT False to load what matches.")
    encoder.load_state_dict({key: state[key] for key in report.loaded}, strict=False)
    logger.info("%s", report)
    return EfficientViTSamWeights(report, sam_parts)


def load_daft_checkpoints(folder: str, names: Sequence[str] = DAFT_MODEL_NAMES
                          ) -> Dict[str, Dict[str, Tensor]]:
    """DAFT's per-modality model files: ``{name: whole-model state dict}``.

    Args:
        folder: holds ``<name>.pth`` files (other file endings are ignored).
        names: the accepted names; ``general`` (the fallback of cases no subset matches) must be
            present.
    Returns:
        ``{name: {"image_encoder.*", "prompt_encoder.*", "mask_decoder.*": tensor}}``, in the
        files' own layout (:func:`load_efficientvit_sam_weights` loads each encoder).
    Raises:
        FileNotFoundError: ``folder`` is not a directory.
        ValueError: a ``.pth`` file with another name, no ``general.pth``, or a file that is
            not a whole EfficientViT-SAM model (the message names the file and the keys).
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"DAFT checkpoint folder {folder!r} does not exist.")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
    unknown = [f for f in files if f[:-len(".pth")] not in names]
    if unknown:
        raise ValueError(f"{folder}: {unknown} are not DAFT model names; each file must be "
                         f"<name>.pth with name in {list(names)} (rename or remove them).")
    if "general.pth" not in files:
        raise ValueError(f"{folder} has no general.pth, the model of cases no modality subset "
                         f"matches (found {files}); copy the generally fine-tuned model there.")
    models = {}
    for file_name in files:
        path = os.path.join(folder, file_name)
        state = read_state_dict(path)
        stray = [key for key in state if not key.startswith(_WHOLE_MODEL_PARTS)]
        absent = [part for part in _WHOLE_MODEL_PARTS
                  if not any(key.startswith(part) for key in state)]
        if absent or stray:
            raise ValueError(f"{path} is not a whole EfficientViT-SAM model: missing parts "
                             f"{absent}, other keys {stray[:5]}{' ...' if len(stray) > 5 else ''}.")
        models[file_name[:-len(".pth")]] = state
    return models
