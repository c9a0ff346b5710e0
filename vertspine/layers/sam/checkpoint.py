"""Loading SAM, MedSAM and LVM-Med ViT-B checkpoints into segment_anything modules.

Two key layouts (:data:`SAM_KEY_LAYOUTS`), told apart by the keys:

- ``"sam"``, the whole model: ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``.
  The official SAM files (``sam_vit_{b,l,h}_*.pth``, bare state dicts) and MedSAM's
  (``medsam_vit_b.pth``: SAM vit_b's keys; MedSAM's training checkpoints hold the same under
  ``{"model": ..., "optimizer": ..., "epoch": ...}``, unwrapped by the reader).
- ``"image_encoder"``, the encoder alone: ``patch_embed.*``, ``pos_embed``, ``blocks.*``,
  ``neck.*``. LVM-Med's ViT-B (``lvmmed_vit.pth``) has no ``pos_embed``: its encoder is built
  with ``SamSize(use_abs_pos=False)``.

Either layout loads into a ``Sam`` or into an ``ImageEncoderViT``: an encoder-only file fills
``image_encoder.*`` of a ``Sam`` (the prompt encoder and mask decoder are reported missing); a
whole-model file gives an ``ImageEncoderViT`` its ``image_encoder.*`` part (the count of the
other parts' keys is in the report's title). Files are read by
:func:`vertspine.utils.state_dict.read_state_dict` (``weights_only``, TorchScript,
``trust_pickle``); every load returns a :class:`CheckpointReport`. Tensors of another shape
(e.g. ``pos_embed`` or relative-position tables of another image size) are reported as
skipped, not interpolated; segment_anything interpolates the relative-position tables at run
time, and :func:`~vertspine.layers.sam.image_encoder.encode_image` the absolute one.
"""
import os
from typing import Dict, Mapping, Optional, Tuple

from torch import Tensor, nn

from vertspine.layers.weights import finish_loading, match_state_dict
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

from .build import SAM_SIZES

__all__ = [
    "SAM_KEY_LAYOUTS",
    "SAM_VARIANTS",
    "load_sam_checkpoint",
    "sam_key_layout",
    "sam_state_for",
    "sam_variant",
]

SAM_KEY_LAYOUTS = ("sam", "image_encoder")
# Image-encoder (width, depth) of the released sizes: vit_b 768/12, vit_l 1024/24, vit_h 1280/32.
SAM_VARIANTS = {name: (size.encoder_dim, size.encoder_depth) for name, size in SAM_SIZES.items()}
_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
_ENCODER = "image_encoder."
_MISSING_HINT = "See weights/README.md and `python scripts/download_weights.py --list`."


def sam_key_layout(state: Mapping[str, Tensor]) -> str:
    """``"sam"`` (whole model) or ``"image_encoder"`` (encoder alone), read from the keys.

    Raises:
        ValueError: neither layout (no ``[image_encoder.]patch_embed.proj.weight``).
    """
    if f"{_ENCODER}patch_embed.proj.weight" in state:
        return "sam"
    if "patch_embed.proj.weight" in state:
        return "image_encoder"
    raise ValueError("Not a SAM state dict: no 'image_encoder.patch_embed.proj.weight' nor "
                     f"'patch_embed.proj.weight' (keys start with "
                     f"{sorted({k.split('.')[0] for k in state})[:5]}).")


def sam_variant(state: Mapping[str, Tensor]) -> str:
    """"vit_b", "vit_l", "vit_h", or "custom (width W, depth D)", from the image encoder's
    patch-embedding width and block count (either key layout)."""
    prefix = _ENCODER if sam_key_layout(state) == "sam" else ""
    width = int(state[f"{prefix}patch_embed.proj.weight"].shape[0])
    blocks = f"{prefix}blocks."
    depth = len({k[len(blocks):].split(".")[0] for k in state if k.startswith(blocks)})
    for name, shape in SAM_VARIANTS.items():
        if shape == (width, depth):
            return name
    return f"custom (width {width}, depth {depth})"


def sam_state_for(state: Mapping[str, Tensor],
                  target: str) -> Tuple[Dict[str, Tensor], Dict[str, str]]:
    """A SAM state dict of either layout in the names of ``target``.

    Args:
        state: a ``"sam"`` or ``"image_encoder"`` layout state dict.
        target: ``"sam"`` (a ``Sam``) or ``"image_encoder"`` (an ``ImageEncoderViT``).
    Returns:
        (the state dict renamed, the keys left out with the reason): only a whole-model file
        read for an encoder leaves keys out (its prompt encoder and mask decoder).
    """
    if target not in SAM_KEY_LAYOUTS:
        raise ValueError(f"SAM target {target!r} is not one of {SAM_KEY_LAYOUTS}.")
    layout = sam_key_layout(state)
    if layout == target:
        return dict(state), {}
    if target == "sam":
        return {_ENCODER + key: value for key, value in state.items()}, {}
    kept, dropped = {}, {}
    for key, value in state.items():
        if key.startswith(_ENCODER):
            kept[key[len(_ENCODER):]] = value
        else:
            dropped[key] = "full SAM checkpoint: not part of the image encoder"
    return kept, dropped


def load_sam_checkpoint(model: nn.Module, source: StateDictSource, *, strict: bool = True,
                        trust_pickle: bool = False, model_type: Optional[str] = None,
                        model_type_key: str = "model_type",
                        missing_hint: str = _MISSING_HINT) -> CheckpointReport:
    """Load a SAM, MedSAM or LVM-Med ViT-B checkpoint into a ``Sam`` or an ``ImageEncoderViT``.

    Args:
        model: a segment_anything ``Sam`` (e.g. from :func:`~.build.build_sam`) or
            ``ImageEncoderViT``.
        source: a checkpoint file in either key layout, or its state dict.
        strict: raise, before anything is copied, unless every key loads; also raise when the
            checkpoint's variant (encoder width and depth) differs from the model's.
        trust_pickle: read a file that needs full unpickling (only files you trust).
        model_type: the configured size ("vit_b", "vit_l", "vit_h"; others are not checked);
            a checkpoint of another released size is refused.
        model_type_key: what the errors call ``model_type`` (the config key that sets it).
        missing_hint: appended to the error when the file does not exist.
    Returns:
        The report (keys in the model's names), also logged.
    Raises:
        FileNotFoundError: no such file.
        vertspine.utils.state_dict.CheckpointReadError: unreadable file.
        ValueError: not a SAM state dict; variant differs from ``model_type`` or (``strict``)
            from the model; (``strict``) any key skipped, missing or unexpected.
    """
    target = "sam" if hasattr(model, "image_encoder") else "image_encoder"
    state = read_state_dict(source, trust_pickle=trust_pickle, missing_hint=missing_hint)
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the SAM state dict"
    found, built = sam_variant(state), sam_variant(model.state_dict())
    if model_type in SAM_VARIANTS and found != model_type:
        raise ValueError(f"{where} is a SAM {found} checkpoint, but {model_type_key} is "
                         f"'{model_type}': set it to '{found}' or use the {model_type} file.")
    if strict and found != built:
        raise ValueError(f"{where} is a SAM {found} checkpoint; the model is SAM {built}.")
    state, dropped = sam_state_for(state, target)
    title = "SAM checkpoint"
    if dropped:
        title += f" (image encoder of a whole-model file; its other {len(dropped)} keys not used)"
    report, load = match_state_dict(model, state, title)
    return finish_loading(report, strict, [load])
