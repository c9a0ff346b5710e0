"""vesselFM's weight files, loaded strictly into a MONAI ``DynUNet`` with the shared report.

Two layouts of the same network (spec A1 "Weights"):

- ``plain``: the released ``vesselFM_base.pt`` (Hugging Face ``bwittmann/vesselFM``), a bare
  ``DynUNet`` state dict (``input_block.*``, ``downsamples.i.*``, ``bottleneck.*``,
  ``upsamples.i.*``, ``output_block.*``), no prefix;
- ``lightning``: a checkpoint written by vesselFM's training/fine-tuning (PyTorch Lightning),
  ``{"state_dict": {"model.<DynUNet key>": ...}, ...}``.

Both go through :func:`load_vesselfm_weights`. The original's ``load_model`` downloads the
released file on *any* exception while loading the given one; here nothing is ever downloaded
and every failure is an error naming the file and the fix: a missing file, an unreadable one
(:func:`vertspine.utils.state_dict.read_state_dict`), or one whose keys or shapes are not the
network's (another architecture, or ``MODEL.SEGMENTOR.DYNUNET`` not vesselFM's: filters
32/64/128/256/320/320, 3^3 kernels, strides 1,2,2,2,2,2, residual blocks). The one exception:
with ``DEEP_SUPERVISION`` the network has heads vesselFM's has not; they keep their
initialisation (logged), so vesselFM can be fine-tuned with deep supervision.

Importing this module registers :func:`vesselfm_checkpoint_layout` in
:data:`vertspine.layers.checkpoint_layouts.CHECKPOINT_LAYOUT_REGISTRY`: a ``MODEL.WEIGHTS``
file that shares no key with a model holding a ``DynUNet`` (the ``Segmentor``'s ``unet``) is
read as one of the two layouts and loaded strictly into that network, for fine-tuning
(``train_net.py``) and for zero-shot evaluation (``--eval-only``).
"""
import logging
import sys
from typing import Any, Dict, Mapping, Optional, Tuple

from torch import Tensor, nn

from vertspine.layers.checkpoint_layouts import CHECKPOINT_LAYOUT_REGISTRY
from vertspine.layers.weights import compare_state_dicts, finish_loading
from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import StateDictSource, read_state_dict

__all__ = ["VESSELFM_LAYOUTS", "load_vesselfm_weights", "vesselfm_checkpoint_layout",
           "vesselfm_layout", "vesselfm_state_dict"]

logger = logging.getLogger(__name__)

VESSELFM_LAYOUTS = ("plain", "lightning")
_LIGHTNING_PREFIX = "model."
_MISSING_HINT = ("vesselFM's released weights are not downloaded automatically: fetch "
                 "vesselFM_base.pt from https://huggingface.co/bwittmann/vesselFM and give its "
                 "path (MODEL.WEIGHTS), or give a vesselFM Lightning checkpoint.")
_FIX = ("The file must be vesselFM's network (a MONAI DynUNet state dict, bare or under a "
        "Lightning 'state_dict' with the 'model.' prefix) and MODEL.SEGMENTOR.DYNUNET must build "
        "the same network: FILTERS [32, 64, 128, 256, 320, 320], KERNEL_SIZES [3]*6, STRIDES "
        "[1, 2, 2, 2, 2, 2], RES_BLOCK True, IN_CHANNELS 1, ACTIVATION 'sigmoid' "
        "(configs/vessels/dynunet_vesselfm_*.yaml).")


def vesselfm_layout(state: Mapping[str, Tensor]) -> str:
    """``"lightning"`` when every key starts with ``model.``, else ``"plain"``."""
    return "lightning" if all(k.startswith(_LIGHTNING_PREFIX) for k in state) else "plain"


def vesselfm_state_dict(source: StateDictSource, *,
                        trust_pickle: bool = False) -> Tuple[Dict[str, Tensor], str]:
    """A vesselFM weight file as a ``DynUNet`` state dict, and its layout.

    Args:
        source: a file (``vesselFM_base.pt``, a Lightning ``.ckpt``) or the object it holds.
        trust_pickle: read with full unpickling (Lightning files that store hyper-parameters as
            objects need it; only for files you trust).
    Returns:
        ``({DynUNet key: tensor}, layout)``, layout one of :data:`VESSELFM_LAYOUTS`.
    Raises:
        FileNotFoundError: no such file (nothing is downloaded instead).
        CheckpointReadError: an unreadable file or one holding no tensors.
    """
    state = read_state_dict(source, trust_pickle=trust_pickle, missing_hint=_MISSING_HINT)
    layout = vesselfm_layout(state)
    if layout == "lightning":
        state = {key[len(_LIGHTNING_PREFIX):]: value for key, value in state.items()}
    return state, layout


def _is_deep_supervision_head(key: str) -> bool:
    """MONAI's DynUNet registers each head twice: ``deep_supervision_heads.i.*`` and, in the
    skip-layer chain, ``...super_head.*``."""
    return key.startswith("deep_supervision_heads.") or ".super_head." in key


def _check(report: CheckpointReport, source: str, layout: str) -> None:
    """Raise unless every key fits; only deep-supervision heads (which vesselFM's network does
    not have) may be missing: they keep their initialisation."""
    missing = [key for key in report.missing if not _is_deep_supervision_head(key)]
    if report.skipped or report.unexpected or missing:
        raise ValueError(f"{source} ({layout} layout) does not fit the network; nothing was "
                         f"loaded.\n{report}\n{_FIX}")
    if report.missing:
        logger.info("%s: the %d tensors of the deep-supervision heads are not in vesselFM's "
                    "network and keep their initialisation.", source, len(report.missing))


def load_vesselfm_weights(network: nn.Module, source: StateDictSource, *,
                          trust_pickle: bool = False) -> CheckpointReport:
    """Load a vesselFM weight file strictly into ``network``.

    Args:
        network: a MONAI ``DynUNet`` built with vesselFM's configuration (the ``Segmentor``'s
            ``unet``); tiny filters work for files of the same tiny network.
        source: see :func:`vesselfm_state_dict`.
        trust_pickle: see :func:`vesselfm_state_dict`.
    Returns:
        The report (every key of the file loaded), also logged.
    Raises:
        FileNotFoundError, CheckpointReadError: see :func:`vesselfm_state_dict`.
        ValueError: a key missing (deep-supervision heads excepted), unexpected or of another
            shape; nothing is copied and the message names the file, the keys and the settings
            to check.
    """
    name = str(source) if not isinstance(source, Mapping) else "<state dict>"
    state, layout = vesselfm_state_dict(source, trust_pickle=trust_pickle)
    report, loadable = compare_state_dicts(network.state_dict(), state,
                                           f"vesselFM weights {name} ({layout})")
    _check(report, name, layout)
    load = lambda: network.load_state_dict(loadable, strict=False)  # noqa: E731
    return finish_loading(report, False, [load])


@CHECKPOINT_LAYOUT_REGISTRY.register()
def vesselfm_checkpoint_layout(model: nn.Module, checkpoint: Any,
                               source: str) -> Optional[Dict[str, Tensor]]:
    """The ``MODEL.WEIGHTS`` converter: a vesselFM file in the names of ``model``'s one
    ``DynUNet`` (e.g. ``unet.input_block.conv1.conv.weight``), checked strictly.

    Returns:
        None when ``model`` holds no ``DynUNet`` (not this layout's model).
    Raises:
        ValueError: the file does not fit the network (see :func:`load_vesselfm_weights`), or
            the model holds several ``DynUNet``s.
    """
    nets = sys.modules.get("monai.networks.nets")  # not imported: the model holds no DynUNet
    if nets is None:
        return None
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nets.DynUNet)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"{source}: a vesselFM file fits one DynUNet, but the model holds "
                         f"{len(found)} ({', '.join(n or '<root>' for n, _ in found)}).")
    prefix, network = found[0]
    state, layout = vesselfm_state_dict(checkpoint)
    report, _ = compare_state_dicts(network.state_dict(), state,
                                    f"vesselFM weights {source} ({layout})")
    _check(report, source, layout)
    logger.info("%s", report)
    prefix = f"{prefix}." if prefix else ""
    return {prefix + key: value for key, value in state.items()}
