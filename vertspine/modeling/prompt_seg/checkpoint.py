"""Loading MedSAM and LiteMedSAM checkpoints into a :class:`PromptSegmentor`, key for key.

:class:`PromptSegmentor` names its parts as the originals, so the released files need no key
map:

- MedSAM ``medsam_vit_b.pth``: SAM ViT-B's state dict (``image_encoder.patch_embed.proj``,
  ``image_encoder.blocks.N``, ``image_encoder.neck``, ``prompt_encoder.*``, ``mask_decoder.*``);
  MedSAM's training checkpoints hold it under ``"model"`` (unwrapped by the reader). Encoder
  ``sam_vit_b``.
- LiteMedSAM ``lite_medsam.pth``: a bare state dict, ``image_encoder.*`` in ``tiny_vit_sam.py``'s
  layout (``patch_embed.seq.N``, ``layers.N``, ``neck.N``; BatchNorm statistics included),
  ``prompt_encoder.*``, ``mask_decoder.*``. Encoder ``tiny_vit``.
- vertspine's own training checkpoints (``{"model": state dict, ...}``).

The same files load through ``MODEL.WEIGHTS`` (detectron2's checkpointer; there, tensors of
another shape are skipped with a warning and unloaded parameters are an error at evaluation).
:func:`load_prompt_seg_checkpoint` is the strict path: before anything is copied it refuses a
file whose image encoder is another architecture than the model's, and (``strict``) any key
skipped, missing or unexpected, naming the file and the keys in a
:class:`~vertspine.utils.checkpoint_report.CheckpointReport`.
"""
import os
from typing import Mapping

from torch import Tensor, nn

from vertspine.layers.weights import finish_loading, match_state_dict
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

__all__ = ["ENCODER_LAYOUTS", "encoder_layout", "load_prompt_seg_checkpoint"]

# Image-encoder layouts, each recognised by one key of its whole-model state dict.
ENCODER_LAYOUTS = {
    "SAM ViT (MedSAM, encoder sam_vit_b)": "image_encoder.patch_embed.proj.weight",
    "TinyViT (LiteMedSAM, encoder tiny_vit)": "image_encoder.patch_embed.seq.0.c.weight",
}
_PARTS = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
_MISSING_HINT = "See weights/README.md and `python scripts/download_weights.py --list`."


def encoder_layout(state: Mapping[str, Tensor]) -> str:
    """The name in :data:`ENCODER_LAYOUTS` of a state dict's image encoder, or a description
    of its first ``image_encoder.*`` keys when it is none of them."""
    for name, key in ENCODER_LAYOUTS.items():
        if key in state:
            return name
    keys = sorted(k for k in state if k.startswith(_PARTS[0]))[:3]
    return f"another encoder ({', '.join(keys) or 'no image_encoder.* keys'})"


def load_prompt_seg_checkpoint(model: nn.Module, source: StateDictSource, *, strict: bool = True,
                               trust_pickle: bool = False) -> CheckpointReport:
    """Load a MedSAM, LiteMedSAM or vertspine checkpoint into a :class:`PromptSegmentor`.

    Args:
        model: the segmenter (``image_encoder``, ``prompt_encoder``, ``mask_decoder``).
        source: a checkpoint file or an already loaded checkpoint / state dict.
        strict: raise, before anything is copied, when the image encoders differ or any key is
            skipped (shape differs), missing or unexpected. Without it the keys that fit load
            and the report says the rest; a file of another image encoder gives only its
            prompt encoder and mask decoder (as DAFT merges LiteMedSAM's into its EfficientViT
            model), its ``image_encoder.*`` keys reported unexpected even where names agree
            (SAM's and TinyViT's necks share theirs).
        trust_pickle: read a file that needs full unpickling (only files you trust).
    Returns:
        The report (keys in the model's names), also logged.
    Raises:
        FileNotFoundError: no such file.
        vertspine.utils.state_dict.CheckpointReadError: unreadable file.
        ValueError: not a box-prompted segmenter's checkpoint; (``strict``) another image
            encoder, or keys that do not load, each named with the file.
    """
    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the checkpoint object"
    state = read_state_dict(source, trust_pickle=trust_pickle, missing_hint=_MISSING_HINT)
    if not any(key.startswith(_PARTS) for key in state):
        raise ValueError(f"{where} is not a MedSAM/LiteMedSAM-layout checkpoint: no key starts "
                         f"with {', '.join(_PARTS)} (its keys start with "
                         f"{sorted({k.split('.')[0] for k in state})[:5]}).")
    found, built = encoder_layout(state), encoder_layout(model.state_dict())
    if strict and found != built:
        raise ValueError(f"{where} holds a {found} image encoder; the model's is {built}. Set "
                         "MODEL.PROMPT_SEG.ENCODER to the file's encoder, or load it with "
                         "strict=False to take only the parts that fit.")
    foreign = [] if found == built else sorted(k for k in state if k.startswith(_PARTS[0]))
    report, load = match_state_dict(model, {k: v for k, v in state.items() if k not in foreign},
                                    f"{where} ({found})")
    report.unexpected += foreign  # another encoder's keys: none loads, even where names agree
    return finish_loading(report, strict, [load])
