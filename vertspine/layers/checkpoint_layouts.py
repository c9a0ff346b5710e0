"""Checkpoint layouts other than vertspine's own, recognised when ``MODEL.WEIGHTS`` is loaded.

vertspine's checkpoints (``{"model": state dict in the model's names}``) load as they are. A
released file in another project's layout (vesselFM's plain MONAI ``DynUNet`` state dict, a
Lightning checkpoint whose keys start with ``model.``) shares no key with the model, so loading
it as is would leave every parameter random. The checkpointer
(:class:`vertspine.engine.AtomicDetectionCheckpointer`) then asks the layouts registered here, in
registration order; the first one that claims the file returns it in the model's names.

A family registers a converter in :data:`CHECKPOINT_LAYOUT_REGISTRY`:
``convert(model, checkpoint, source) -> Optional[Dict[str, Tensor]]``, where ``model`` is the
model being loaded (unwrapped from DistributedDataParallel), ``checkpoint`` the object the file
holds (a state dict or a container such as Lightning's ``{"state_dict": ...}``) and ``source``
the file name for messages. It returns None when the layout does not apply to this model, the
converted state dict when it does, and raises (naming ``source`` and the fix) when the model is
its kind but the file does not fit it: a converter checks strictly and never falls back.
"""
import logging
from typing import Any, Dict, Optional, Tuple

from detectron2.utils.registry import Registry
from torch import Tensor, nn

__all__ = ["CHECKPOINT_LAYOUT_REGISTRY", "convert_foreign_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT_LAYOUT_REGISTRY = Registry("CHECKPOINT_LAYOUT")
CHECKPOINT_LAYOUT_REGISTRY.__doc__ = """Converters of other projects' checkpoint layouts:
``convert(model, checkpoint, source)`` -> the state dict in ``model``'s names, or None."""


def convert_foreign_checkpoint(model: nn.Module, checkpoint: Any,
                               source: str) -> Optional[Tuple[str, Dict[str, Tensor]]]:
    """``(layout name, state dict in the model's names)`` from the first registered layout that
    claims ``checkpoint`` for ``model``; None when none does.

    Raises:
        whatever the claiming converter raises (a file of its kind that does not fit the model).
    """
    for name, convert in CHECKPOINT_LAYOUT_REGISTRY:
        state = convert(model, checkpoint, source)
        if state is not None:
            logger.info("%s converted by %s (%d tensors)", source, name, len(state))
            return name, state
    return None
