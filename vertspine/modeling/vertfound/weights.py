"""Loading released weights into VertFound's parts, each load with a :class:`CheckpointReport`.

- **SAM** files (official SAM, MedSAM) load with :func:`vertspine.layers.sam.load_sam_checkpoint`.
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

Files are read by :func:`vertspine.utils.state_dict.read_state_dict` (``weights_only=True``; a
file that needs full unpickling is refused unless ``trust_pickle=True``). TorchScript archives
run no code when read, but are TorchScript programs: load only files from a source you trust.
Keys are matched by :func:`vertspine.layers.weights.match_state_dict`. open_clip is imported
inside the functions.
"""
import logging
from typing import Dict, Mapping

from torch import Tensor, nn

from vertspine.layers.weights import finish_loading, match_state_dict
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

__all__ = [
    "build_clip_from_openai_checkpoint",
    "clip_architecture",
    "load_clip_checkpoint",
    "load_vertfound_checkpoint",
]

logger = logging.getLogger(__name__)
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_MISSING_HINT = "See weights/README.md and `python scripts/download_weights.py --list`."
# VertFound/RegionSpot prefixes -> (attribute path on our model, kind)
_VERTFOUND_PARTS = (("sam.", "sam", "sam"), ("clip_model.", "clip", "clip"),
                    ("to_clip.", "fusion.sam_proj", "plain"))


def _read(source: StateDictSource, trust_pickle: bool) -> Dict[str, Tensor]:
    return read_state_dict(source, trust_pickle=trust_pickle, missing_hint=_MISSING_HINT)


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


def load_clip_checkpoint(clip: nn.Module, source: StateDictSource, *, strict: bool = True,
                         trust_pickle: bool = False) -> CheckpointReport:
    """Load an OpenAI (TorchScript or state dict) or open_clip checkpoint into an open_clip CLIP.

    Position embeddings are interpolated to the model's image size / context length with
    open_clip's ``resize_pos_embed`` / ``resize_text_pos_embed``.

    Raises:
        ValueError: (strict) any key skipped, missing or unexpected; the message gives both
            architectures.
    """
    state = _adapt_clip_state(clip, _read(source, trust_pickle))
    report, load = match_state_dict(clip, state, "CLIP checkpoint")
    if strict and not report.complete:
        raise ValueError(f"Checkpoint ({clip_architecture(state)}) does not fit the CLIP model "
                         f"({clip_architecture(clip.state_dict())}).\n{report}")
    return finish_loading(report, strict, [load])


def build_clip_from_openai_checkpoint(source: StateDictSource, *,
                                      trust_pickle: bool = False) -> nn.Module:
    """An fp32 open_clip CLIP built from an OpenAI checkpoint's shapes and weights (eval mode)."""
    from open_clip.model import build_model_from_openai_state_dict

    state = _read(source, trust_pickle)
    return build_model_from_openai_state_dict(dict(state), cast_dtype=None).float().eval()


def load_vertfound_checkpoint(model: nn.Module, source: StateDictSource, *, strict: bool = False,
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
    state = _read(source, trust_pickle)
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
        part_report, load = match_state_dict(target, part, attribute)
        report.extend(part_report, prefix=f"{attribute}.")
        loads.append(load)
    report.unexpected += sorted(k for k in state if k not in used)
    if strict and (report.skipped or any(not m.endswith("separately)") for m in report.missing)):
        raise ValueError(f"strict loading failed (nothing was loaded).\n{report}")
    return finish_loading(report, False, loads)


def _adapt_clip_state(clip: nn.Module, state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """open_clip's own conversions (text-tower layout, logit_scale shape, position embeddings),
    after dropping OpenAI's JIT-only entries."""
    from open_clip.model import (
        convert_to_custom_text_state_dict,
        resize_pos_embed,
        resize_text_pos_embed,
    )

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
