"""Checkpoints written atomically.

fvcore's Checkpointer opens ``model_XXXX.pth`` and ``last_checkpoint`` in place, so a kill
during a save leaves a truncated file that ``--resume`` then tries to load. Here every file is
written to a temporary name in the same folder, flushed to disk, and renamed over the target
(``os.replace`` is atomic on POSIX), so a reader sees the old file or the new one, never half.
A checkpointer built with ``use_ema_weights=True`` loads a checkpoint's averaged weights
(``model_ema``, :mod:`vertspine.engine.ema`) into its model, for evaluation.
"""
import os
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer

from vertspine.utils.file_io import atomic_write

from .ema import averaged_weights

__all__ = ["AtomicDetectionCheckpointer", "check_weights_file"]


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose ``save`` and ``tag_last_checkpoint`` are atomic.

    Args:
        model, save_dir, **checkpointables: as DetectionCheckpointer.
        use_ema_weights: load the averaged weights of a checkpoint (``model_ema``) into the
            model instead of its raw ones (``cfg.MODEL_EMA.ENABLED`` when evaluating; never in
            training, whose checkpointer restores ``model_ema`` as a checkpointable).
    """

    def __init__(self, model, save_dir: str = "", *, use_ema_weights: bool = False,
                 **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.use_ema_weights = use_ema_weights

    def _load_file(self, filename: str):
        loaded = super()._load_file(filename)
        if self.use_ema_weights:
            loaded["model"] = averaged_weights(loaded, filename)
            self.logger.info(f"Using the averaged weights (model_ema) of {filename}")
        return loaded

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` (model, checkpointables, kwargs) and tag it last."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        with atomic_write(save_file, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Atomically point ``<save_dir>/last_checkpoint`` at ``last_filename_basename``."""
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)


def check_weights_file(weights: str, output_dir: str, resume: bool) -> None:
    """Fail early, naming the key and the fix, when ``MODEL.WEIGHTS`` is a missing local file.

    Nothing is checked for "" (random initialisation), for URLs and catalog paths (``://``),
    or with ``resume`` when ``output_dir/last_checkpoint`` exists (then the weights are unused).

    Raises:
        FileNotFoundError: ``weights`` names no file.
    """
    if not weights or "://" in weights:
        return
    if resume and os.path.isfile(os.path.join(output_dir, "last_checkpoint")):
        return
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"MODEL.WEIGHTS {weights!r} does not exist (working directory {os.getcwd()!r}). "
            "Run the training that writes it (the config's comments say which), or set "
            "MODEL.WEIGHTS to another checkpoint, or to \"\" for a random initialisation.")
