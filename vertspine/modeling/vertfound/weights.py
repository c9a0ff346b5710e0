"""Loading released weights into VertFound's parts, each load with a :class:`CheckpointReport`.

- **SAM** (``sam_vit_{b,l,h}_*.pth``, a state dict with keys ``image_encoder.*``,
  ``prompt_encoder.*``, ``mask_decoder.*``) into a ``segment_anything.modeling.Sam``. The
  variant is read from the shapes (image-encoder width and depth: vit_b 768/12, vit_l 1024/24,
  vit_h 1280/32) and must match the configured ``MODEL.VERTFOUND.SAM.MODEL_TYPE`` and the model.
- **CLIP** into an open_clip ``CLIP``: OpenAI's released files (TorchScript archives, read
  with ``torch.jit.load``), plain OpenAI state dicts (``visual.*``, ``transformer.*``,
  ``token_embedding.weight``, ``positional_embedding``, ``ln_final.*``, ``text_projection``,
  ``logit_scale``; the same key names as open_clip's ``CLIP``) and open_clip checkpoints (the
  state dict possibly under ``"state_dict"``, keys possibly prefixed ``module.``). open_clip's
  own functions adapt them: ``resize_pos_embed``/``resize_text_pos_embed`` interpolate position
  embeddings to the model's sizes, and :func:`build_clip_from_openai_checkpoint` uses
  ``build_model_from_openai_state_dict``. fp16 tensors are cast to the model's dtype.
- **VertFound / RegionSpot** detectron2 checkpoints (``{"model": {"model.sam.*",
  "model.clip_model.*", "model.to_clip.*", ...}}``): the SAM part into ``model.sam``, the CLIP
  part (OpenAI layout) into ``model.clip``, ``to_clip`` (Linear 256 -> CLIP width) into
  ``model.fusion.sam_proj``. Everything else (``pan_decoder``, ``projector``, ``sk_proj``,
  RegionSpot's ``decoder``...) has no counterpart here and is reported as unexpected. RegionSpot's
  released files drop their SAM and CLIP parts (``tools/re_save_ckpt.py``); a part absent from
  the file is reported as one "missing" line and keeps its current weights.

Files are read with ``torch.load(weights_only=True)``; a file that needs full unpickling is
refused unless ``trust_pickle=True``. TorchScript archives run no code when read, but are
TorchScript programs: load only files from a source you trust.
"""
import logging
import os
import warnings
import zipfile
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from open_clip.model import (
    build_model_from_openai_state_dict,
    convert_to_custom_text_state_dict,
    resize_pos_embed,
    resize_text_pos_embed,
)
from torch import Tensor, nn

from vertspine.utils.checkpoint_report import CheckpointReport

__all__ = [
    "SAM_VARIANTS",
    "build_clip_from_openai_checkpoint",
    "clip_architecture",
    "load_clip_checkpoint",
    "load_sam_checkpoint",
    "load_vertfound_checkpoint",
    "read_checkpoint",
    "sam_variant",
]

logger = logging.getLogger(__name__)
Source = Union[str, os.PathLike, Mapping]
# SAM image-encoder (width, depth) of the official variants.
SAM_VARIANTS = {"vit_b": (768, 12), "vit_l": (1024, 24), "vit_h": (1280, 32)}
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
# VertFound/RegionSpot prefixes -> (attribute path on our model, kind)
_VERTFOUND_PARTS = (("sam.", "sam", "sam"), ("clip_model.", "clip", "clip"),
                    ("to_clip.", "fusion.sam_proj", "plain"))


def read_checkpoint(source: Source, *, trust_pickle: bool = False) -> Dict[str, Tensor]:
    """The state dict of a checkpoint file (or object), unwrapped and on the CPU.

    Unwraps ``{"model": sd}`` (detectron2) and ``{"state_dict": sd}`` (open_clip), reads
    TorchScript archives' state dicts (dropping OpenAI's ``input_resolution``,
    ``context_length``, ``vocab_size`` entries) and strips a ``module.`` prefix present on
    every key.

    Raises:
        FileNotFoundError: the file does not exist (with the download command).
        ValueError: the file needs full unpickling and ``trust_pickle`` is False, or holds no
            state dict.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint {path} does not exist; see weights/README.md "
                                    "and `python scripts/download_weights.py --list`.")
        if _is_torchscript(path):
            with warnings.catch_warnings():  # torch 2.x flags torch.jit as deprecated
                warnings.simplefilter("ignore", FutureWarning)
                state = dict(torch.jit.load(path, map_location="cpu").state_dict())
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
            except Exception as e:  # pickle.UnpicklingError and friends
                first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise ValueError(f"{path} could not be read with weights_only=True ({first_line}). "
                                 "If you trust the file, pass trust_pickle=True.") from e
    else:
        state = source
    for wrapper in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{source if isinstance(source, (str, os.PathLike)) else 'The object'} "
                         "holds no state dict of tensors.")
    state = {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def sam_variant(state_dict: Mapping[str, Tensor]) -> str:
    """"vit_b", "vit_l", "vit_h", or "custom (width W, depth D)" from image-encoder shapes."""
    key = "image_encoder.patch_embed.proj.weight"
    if key not in state_dict:
        raise ValueError(f"Not a SAM state dict: no '{key}' (keys start with "
                         f"{sorted({k.split('.')[0] for k in state_dict})[:5]}).")
    width = int(state_dict[key].shape[0])
    depth = len({k.split(".")[2] for k in state_dict if k.startswith("image_encoder.blocks.")})
    for name, shape in SAM_VARIANTS.items():
        if shape == (width, depth):
            return name
    return f"custom (width {width}, depth {depth})"


def load_sam_checkpoint(sam: nn.Module, source: Source, *, model_type: Optional[str] = None,
                        strict: bool = True, trust_pickle: bool = False) -> CheckpointReport:
    """Load an official SAM checkpoint into a ``Sam``.

    Args:
        sam: a segment_anything ``Sam``.
        source: ``sam_vit_b_01ec64.pth`` and friends, or their state dict.
        model_type: the configured type (MODEL.VERTFOUND.SAM.MODEL_TYPE); checked against the
            checkpoint when it is vit_b/l/h.
        strict: raise unless every key loads.
    Raises:
        ValueError: the checkpoint's variant differs from ``model_type`` or from the model's,
            or (strict) any key is skipped, missing or unexpected.
    """
    state = read_checkpoint(source, trust_pickle=trust_pickle)
    found, model = sam_variant(state), sam_variant(sam.state_dict())
    where = source if isinstance(source, (str, os.PathLike)) else "the SAM state dict"
    if model_type in SAM_VARIANTS and found != model_type:
        raise ValueError(f"{where} is a SAM {found} checkpoint, but MODEL.VERTFOUND.SAM.MODEL_TYPE "
                         f"is '{model_type}': set it to '{found}' or use the {model_type} file.")
    if found != model:
        raise ValueError(f"{where} is a SAM {found} checkpoint; the model is SAM {model}.")
    report, load = _match_part(sam, state, "SAM checkpoint")
    return _finish(report, strict, [load])


def clip_architecture(state_dict: Mapping[str, Tensor]) -> str:
    """A readable summary of a CLIP state dict, e.g. "ViT width 1024, 24 layers, patch 14, 224 px"."""
    if "visual.conv1.weight" not in state_dict:
        return "not a ViT CLIP (no visual.conv1.weight)"
    width, _, patch, _ = state_dict["visual.conv1.weight"].shape
    layers = len({k.split(".")[3] for k in state_dict if k.startswith("visual.transformer.resblocks.")})
    summary = f"ViT width {width}, {layers} layers, patch {patch}"
    if "visual.positional_embedding" in state_dict:
        grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        summary += f", {grid * patch} px"
    return summary


def load_clip_checkpoint(clip: nn.Module, source: Source, *, strict: bool = True,
                         trust_pickle: bool = False) -> CheckpointReport:
    """Load an OpenAI (TorchScript or state dict) or open_clip checkpoint into an open_clip CLIP.

    Position embeddings are interpolated to the model's image size / context length with
    open_clip's ``resize_pos_embed`` / ``resize_text_pos_embed``.

    Raises:
        ValueError: (strict) any key skipped, missing or unexpected; the message gives both
            architectures.
    """
    state = _adapt_clip_state(clip, read_checkpoint(source, trust_pickle=trust_pickle))
    report, load = _match_part(clip, state, "CLIP checkpoint")
    if strict and not report.complete:
        raise ValueError(f"Checkpoint ({clip_architecture(state)}) does not fit the CLIP model "
                         f"({clip_architecture(clip.state_dict())}).\n{report}")
    return _finish(report, strict, [load])


def build_clip_from_openai_checkpoint(source: Source, *, trust_pickle: bool = False) -> nn.Module:
    """An fp32 open_clip CLIP built from an OpenAI checkpoint's shapes and weights (eval mode)."""
    state = read_checkpoint(source, trust_pickle=trust_pickle)
    return build_model_from_openai_state_dict(dict(state), cast_dtype=None).float().eval()


def load_vertfound_checkpoint(model: nn.Module, source: Source, *, strict: bool = False,
                              trust_pickle: bool = False) -> CheckpointReport:
    """Load the SAM, CLIP and ``to_clip`` parts of a VertFound/RegionSpot checkpoint.

    Args:
        model: has ``.sam`` (Sam), ``.clip`` (open_clip CLIP), ``.fusion.sam_proj`` (Linear).
        source: e.g. ``vertfound_bl.pth`` or a RegionSpot ``model_final.pth``.
        strict: raise when a key of a part present in the file does not load (keys without a
            counterpart are reported, never an error).
        trust_pickle: detectron2 checkpoints also hold optimizer/scheduler state that may need
            full unpickling; allow it for files you trust.
    Returns:
        the report; keys carry our prefixes (``sam.``, ``clip.``, ``fusion.sam_proj.``).
    """
    state = read_checkpoint(source, trust_pickle=trust_pickle)
    if state and sum(k.startswith("model.") for k in state) * 2 > len(state):
        state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    report = CheckpointReport(title="VertFound checkpoint")
    used, loads = set(), []
    for prefix, attribute, kind in _VERTFOUND_PARTS:
        target = model.get_submodule(attribute)
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        used.update(prefix + k for k in part)
        if not part:
            report.missing.append(f"{attribute}.* (all {len(target.state_dict())} keys: no "
                                  f"'{prefix}*' in the checkpoint; load them separately)")
            continue
        if kind == "clip":
            part = _adapt_clip_state(target, part)
        part_report, load = _match_part(target, part, attribute)
        report.extend(part_report, prefix=f"{attribute}.")
        loads.append(load)
    report.unexpected += sorted(k for k in state if k not in used)
    if strict and (report.skipped or any(not m.endswith("separately)") for m in report.missing)):
        raise ValueError(f"strict loading failed (nothing was loaded).\n{report}")
    return _finish(report, False, loads)


def _adapt_clip_state(clip: nn.Module, state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """open_clip's own conversions (text-tower layout, logit_scale shape, position embeddings),
    after dropping OpenAI's JIT-only entries."""
    # JIT archives also carry the values of buffers the model recomputes (attn_mask)
    recomputed = {name for name, _ in clip.named_buffers()} - set(clip.state_dict())
    state = {k: v for k, v in state.items() if k not in _OPENAI_EXTRA_KEYS and k not in recomputed}
    if "positional_embedding" in state and not hasattr(clip, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    scale = getattr(clip, "logit_scale", None)
    if "logit_scale" in state and scale is not None and scale.ndim != state["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(scale.shape)
    resize_pos_embed(state, clip)
    resize_text_pos_embed(state, clip)
    return state


def _match_part(module: nn.Module, state: Mapping[str, Tensor],
                title: str) -> Tuple[CheckpointReport, Callable[[], None]]:
    """The report of loading ``state`` into ``module``, and the function that loads it.

    Keys ``module`` has with the same shape load; the others are skipped (shape), unexpected or
    missing. Nothing is copied until the returned function runs (``load_state_dict`` with
    ``strict=False``; ``copy_`` casts e.g. fp16 weights to the model's dtype).
    """
    expected = module.state_dict()
    report = CheckpointReport(title=title)
    loadable = {}
    for key, value in state.items():
        if key not in expected:
            report.unexpected.append(key)
        elif value.shape != expected[key].shape:
            report.skipped[key] = f"checkpoint {list(value.shape)}, model {list(expected[key].shape)}"
        else:
            loadable[key] = value
            report.loaded.append(key)
    report.missing = [key for key in expected if key not in state]
    return report, lambda: module.load_state_dict(loadable, strict=False)


def _finish(report: CheckpointReport, strict: bool, loads: List[Callable[[], None]]) -> CheckpointReport:
    """Raise (strict, incomplete) before anything is copied; else load, log and return."""
    if strict and not report.complete:
        raise ValueError(f"strict loading failed (nothing was loaded).\n{report}")
    for load in loads:
        load()
    logger.log(logging.INFO if report.complete else logging.WARNING, "%s", report)
    return report
