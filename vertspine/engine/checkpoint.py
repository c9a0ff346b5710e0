"""Checkpoints written atomically.

fvcore's Checkpointer opens ``model_XXXX.pth`` and ``last_checkpoint`` in place, so a kill
during a save leaves a truncated file that ``--resume`` then tries to load. Here every file is
written to a temporary name in the same folder, flushed to disk, and renamed over the target
(``os.replace`` is atomic on POSIX), so a reader sees the old file or the new one, never half.
A checkpointer built with ``use_ema_weights=True`` loads a checkpoint's averaged weights
(``model_ema``, :mod:`vertspine.engine.ema`) into its model, for evaluation.

What else it guarantees:
- no checkpoint holding NaN or infinite weights is written: such a save raises, naming the
  tensors and the last checkpoint with finite weights, which ``last_checkpoint`` keeps naming;
- a file that is not a checkpoint fails to load with one error naming it and what it is;
- a file none of whose keys is the model's is offered to the layouts of
  :mod:`vertspine.layers.checkpoint_layouts` (released files of other projects, e.g. vesselFM's),
  which convert it or refuse it with an error;
- weights that leave parameters of the model unloaded are named as staying random (training),
  or refused (``allow_partial_weights=False``: evaluation, ``TEST.ALLOW_PARTIAL_WEIGHTS``).
"""
import os
from collections import Counter
from typing import Any, Iterable, List, Mapping, Sequence

import torch
from detectron2.checkpoint import DetectionCheckpointer
from fvcore.common.checkpoint import _filter_reused_missing_keys

from vertspine.layers.checkpoint_layouts import convert_foreign_checkpoint
from vertspine.utils.file_io import atomic_write, stale_temporary_files
from vertspine.utils.state_dict import (
    CheckpointReadError,
    non_finite_tensors,
    not_a_checkpoint,
    unreadable_checkpoint_error,
)

from .ema import averaged_weights

__all__ = [
    "AtomicDetectionCheckpointer", "NonFiniteWeightsError", "check_weights_file",
    "load_evaluation_weights",
]


class NonFiniteWeightsError(FloatingPointError):
    """A save refused because the weights hold NaN or infinity (training diverged)."""


class AtomicDetectionCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer whose ``save`` and ``tag_last_checkpoint`` are atomic.

    Args:
        model, save_dir, **checkpointables: as DetectionCheckpointer.
        use_ema_weights: load the averaged weights of a checkpoint (``model_ema``) into the
            model instead of its raw ones (``cfg.MODEL_EMA.ENABLED`` when evaluating; never in
            training, whose checkpointer restores ``model_ema`` as a checkpointable).
        allow_partial_weights: a loaded file that leaves parameters of the model unloaded is a
            warning naming them (True: training from pretrained parts) or an error (False:
            evaluation, where those parameters would be random).
    """

    def __init__(self, model, save_dir: str = "", *, use_ema_weights: bool = False,
                 allow_partial_weights: bool = True, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.use_ema_weights = use_ema_weights
        self.allow_partial_weights = allow_partial_weights
        self._loading = ""

    def _load_file(self, filename: str):
        self._loading = filename
        try:
            loaded = super()._load_file(filename)
        except Exception as e:  # torch.load / pickle errors: name the file and what it is
            raise unreadable_checkpoint_error(filename, e)
        if not isinstance(loaded, Mapping):
            raise CheckpointReadError(f"{filename} holds a {type(loaded).__name__}, not a "
                                      "checkpoint (a dict of weights).")
        converted = self._foreign_layout(loaded["model"], filename)
        if converted is not None:
            return {"model": converted}
        if self.use_ema_weights:
            loaded["model"] = averaged_weights(loaded, filename)
            self.logger.info(f"Using the averaged weights (model_ema) of {filename}")
        return loaded

    def _foreign_layout(self, state: Any, filename: str):
        """``state`` converted by a registered layout when none of its keys (less a ``module.``
        prefix) is the model's; else None (vertspine's own layout, or nothing claims it)."""
        if not isinstance(state, Mapping):
            return None
        keys = {key[len("module."):] if key.startswith("module.") else key for key in state}
        if keys & set(self.model.state_dict()):
            return None
        converted = convert_foreign_checkpoint(self.model, state, filename)
        return None if converted is None else converted[1]

    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` (model, checkpointables, kwargs) and tag it last.

        Raises:
            NonFiniteWeightsError: a tensor holds NaN or infinity; nothing is written.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self._refuse_non_finite(data, save_file)
        self.logger.info(f"Saving checkpoint to {save_file}")
        with atomic_write(save_file, "wb") as f:
            torch.save(data, f)
        self.tag_last_checkpoint(basename)

    def _refuse_non_finite(self, data: Mapping[str, Any], save_file: str) -> None:
        """Raise :class:`NonFiniteWeightsError`, naming the last good checkpoint, when ``data``
        holds a NaN or infinite tensor (model, optimizer state, ``model_ema``, ...)."""
        bad = non_finite_tensors(data)
        if bad:
            raise NonFiniteWeightsError(
                f"Not saving {save_file}: {len(bad)} tensors hold NaN or infinite values "
                f"({', '.join(bad[:5])}{', ...' if len(bad) > 5 else ''}).\n"
                f"{self.divergence_advice()}")

    def divergence_advice(self) -> str:
        """What to do after training diverged: the last checkpoint written (its weights are
        finite: :meth:`save` refuses others) and how to go on from it."""
        if self.has_checkpoint():
            last = (f"The last checkpoint, with finite weights, is {self.get_checkpoint_file()} "
                    "(named by OUTPUT_DIR/last_checkpoint): --resume continues from it.")
        else:
            last = "No checkpoint was written before the divergence."
        return (f"Training diverged. {last} Lower SOLVER.BASE_LR, lengthen "
                "SOLVER.WARMUP_ITERS or enable SOLVER.CLIP_GRADIENTS.")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Atomically point ``<save_dir>/last_checkpoint`` at ``last_filename_basename``."""
        with atomic_write(os.path.join(self.save_dir, "last_checkpoint"), "w") as f:
            f.write(last_filename_basename)

    def remove_stale_temporary_files(self) -> List[str]:
        """Remove the temporary files a kill during a save left in ``save_dir``; returns them."""
        removed = stale_temporary_files(self.save_dir) if self.save_dir else []
        for path in removed:
            os.remove(path)
            self.logger.info(f"Removed {path}, left by an interrupted save")
        return removed

    def _log_incompatible_keys(self, incompatible) -> None:
        """fvcore's report, then the parameters the file left unloaded: named as staying at
        their random initialisation, or an error when partial weights are not allowed."""
        super()._log_incompatible_keys(incompatible)
        missing = _filter_reused_missing_keys(self.model, incompatible.missing_keys)
        if not missing:
            return
        modules = _unloaded_modules(list(self.model.state_dict()), missing)
        summary = (f"{self._loading} leaves {len(missing)} parameters and buffers of the model "
                   f"unloaded: {', '.join(modules[:10])}{', ...' if len(modules) > 10 else ''}")
        if not self.allow_partial_weights:
            raise CheckpointReadError(
                f"{summary}. Evaluating them would evaluate random weights: the file is not a "
                "checkpoint of this model (another architecture or config?). Give MODEL.WEIGHTS "
                "a checkpoint this config trained, or set TEST.ALLOW_PARTIAL_WEIGHTS True to "
                "evaluate anyway.")
        self.logger.warning(f"{summary}. They stay at their random initialisation.")


def _unloaded_modules(keys: Sequence[str], missing: Iterable[str]) -> List[str]:
    """The outermost modules all of whose state-dict entries are in ``missing``, in the order of
    the model's ``keys``: ``["roi_heads", "backbone.fpn_lateral2"]`` rather than every key (a
    missing key whose module is partly loaded is named itself)."""
    missing = set(missing)
    total, unloaded = Counter(), Counter()
    for key in keys:
        for prefix in _module_prefixes(key):
            total[prefix] += 1
            unloaded[prefix] += key in missing
    names = [next((p for p in _module_prefixes(key) if unloaded[p] == total[p]), key)
             for key in keys if key in missing]
    return list(dict.fromkeys(names))


def _module_prefixes(key: str) -> List[str]:
    """``"a.b.weight"`` -> ``["a", "a.b"]``: the modules above a state-dict key, outermost first."""
    parts = key.split(".")[:-1]
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def load_evaluation_weights(model: torch.nn.Module, cfg, resume: bool) -> str:
    """Load the weights ``--eval-only`` evaluates into ``model``; returns their file.

    With ``resume`` that is ``OUTPUT_DIR/last_checkpoint``'s file when there is one, else
    MODEL.WEIGHTS. The averaged weights with MODEL_EMA.ENABLED; every parameter of the model
    must be loaded unless TEST.ALLOW_PARTIAL_WEIGHTS.

    Raises:
        ValueError: there is nothing to load (no checkpoint to resume, MODEL.WEIGHTS empty).
        CheckpointReadError: the file is unreadable, or leaves parameters unloaded.
    """
    checkpointer = AtomicDetectionCheckpointer(
        model, save_dir=cfg.OUTPUT_DIR, use_ema_weights=cfg.MODEL_EMA.ENABLED,
        allow_partial_weights=cfg.TEST.ALLOW_PARTIAL_WEIGHTS,
    )
    path = checkpointer.get_checkpoint_file() if resume and checkpointer.has_checkpoint() \
        else cfg.MODEL.WEIGHTS
    if not path:
        found = f"OUTPUT_DIR {cfg.OUTPUT_DIR!r} has no last_checkpoint and " if resume else ""
        raise ValueError(
            f"--eval-only needs weights: {found}MODEL.WEIGHTS is empty. Add MODEL.WEIGHTS "
            "path/to/model.pth, or --resume with OUTPUT_DIR set to a training run's folder "
            "(its last_checkpoint is used).")
    checkpointer.load(path, checkpointables=[])
    return path


def check_weights_file(weights: str, output_dir: str, resume: bool) -> None:
    """Fail early, naming the key and the fix, when ``MODEL.WEIGHTS`` is a missing local file,
    a directory, or a file whose bytes cannot be a checkpoint (truncated, text, unknown data).

    Nothing is checked for "" (random initialisation), for URLs and catalog paths (``://``),
    or with ``resume`` when ``output_dir/last_checkpoint`` exists (then the weights are unused).

    Raises:
        FileNotFoundError: ``weights`` names nothing.
        CheckpointReadError: ``weights`` is a directory or not a checkpoint file.
    """
    if not weights or "://" in weights:
        return
    if resume and os.path.isfile(os.path.join(output_dir, "last_checkpoint")):
        return
    if os.path.isdir(weights):
        raise CheckpointReadError(
            f"MODEL.WEIGHTS {weights!r} is a directory, not a checkpoint file: name the "
            ".pth/.pkl file inside it (e.g. model_final.pth).")
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"MODEL.WEIGHTS {weights!r} does not exist (working directory {os.getcwd()!r}). "
            "Run the training that writes it (the config's comments say which), or set "
            "MODEL.WEIGHTS to another checkpoint, or to \"\" for a random initialisation.")
    what = not_a_checkpoint(weights)
    if what is not None:
        raise CheckpointReadError(
            f"MODEL.WEIGHTS {weights!r} is not a PyTorch checkpoint (a torch.save file or a "
            f"pickle): it is {what}. Copy or download it again, or set MODEL.WEIGHTS to another "
            "checkpoint.")
