"""A learning-rate schedule that steps on a validation metric (``SOLVER.PLATEAU``).

LiteMedSAM's training reduced its rate with ``ReduceLROnPlateau`` on the *training* loss, which
keeps falling while the model overfits. Here the configured schedule (detectron2's warmup +
steps or cosine) is multiplied by a scale that starts at 1 and is multiplied by
``SOLVER.PLATEAU.FACTOR`` whenever the validation metric ``SOLVER.PLATEAU.METRIC`` (a key of
the evaluation results, e.g. ``prompt_seg/DSC`` or ``bbox/AP``, computed every
``TEST.EVAL_PERIOD`` iterations) has not improved for more than ``PATIENCE`` evaluations in a
row, as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` counts (relative threshold, no cooldown).
The scale never goes below ``MIN_SCALE``.

In several processes the main process's results decide, so every process lowers its rate at
the same evaluation. The scale, the best value and the count of evaluations without
improvement are saved in every checkpoint (the hook's state), so ``--resume`` continues the
same schedule; the trainer saves its periodic checkpoints after the evaluation of the same
iteration for that reason.
"""
import logging
import math
from typing import Optional

from detectron2.engine import HookBase
from detectron2.utils import comm
from fvcore.common.param_scheduler import ParamScheduler

__all__ = ["PlateauScaledSchedule", "ValidationPlateau", "check_plateau_settings"]

logger = logging.getLogger(__name__)


class PlateauScaledSchedule(ParamScheduler):
    """``base(where) * scale``: a fvcore schedule of learning-rate multipliers whose ``scale``
    :class:`ValidationPlateau` lowers."""

    def __init__(self, base: ParamScheduler):
        self.base = base
        self.scale = 1.0

    def __call__(self, where: float) -> float:
        return self.base(where) * self.scale


def check_plateau_settings(cfg) -> None:
    """Errors naming the keys when SOLVER.PLATEAU cannot work with the rest of the config."""
    plateau = cfg.SOLVER.PLATEAU
    if not plateau.METRIC:
        return
    if cfg.TEST.EVAL_PERIOD <= 0 or not cfg.DATASETS.TEST:
        raise ValueError(
            f"SOLVER.PLATEAU.METRIC {plateau.METRIC!r} steps the learning rate on evaluations, "
            f"but TEST.EVAL_PERIOD is {cfg.TEST.EVAL_PERIOD} and DATASETS.TEST is "
            f"{tuple(cfg.DATASETS.TEST)}: set TEST.EVAL_PERIOD > 0 and a validation dataset in "
            f"DATASETS.TEST, or SOLVER.PLATEAU.METRIC ''.")
    if plateau.MODE not in ("max", "min"):
        raise ValueError(f"SOLVER.PLATEAU.MODE must be 'max' or 'min', got {plateau.MODE!r}.")
    if not 0.0 < plateau.FACTOR < 1.0:
        raise ValueError(f"SOLVER.PLATEAU.FACTOR must be in (0, 1), got {plateau.FACTOR}.")
    if plateau.PATIENCE < 0 or plateau.THRESHOLD < 0 or not 0.0 <= plateau.MIN_SCALE <= 1.0:
        raise ValueError(
            f"SOLVER.PLATEAU needs PATIENCE >= 0, THRESHOLD >= 0 and MIN_SCALE in [0, 1]; got "
            f"{plateau.PATIENCE}, {plateau.THRESHOLD}, {plateau.MIN_SCALE}.")


class ValidationPlateau(HookBase):
    """After each evaluation, lower the learning-rate scale when the metric stopped improving.

    Place it after detectron2's ``EvalHook`` (which writes the results to the event storage)
    and after the ``LRScheduler`` hook: a reduction rescales the optimizer's current rates at
    once and every later step through ``schedule``.

    Args:
        schedule: the multiplier the trainer's ``LRMultiplier`` calls.
        eval_period: TEST.EVAL_PERIOD.
        metric: the results key, as the event storage holds it (``task/name``).
        mode: "max" when larger is better, "min" when smaller is better.
        factor: scale multiplier of one reduction, in (0, 1).
        patience: evaluations without improvement tolerated before a reduction.
        threshold: relative improvement needed to count (``best * (1 + threshold)`` in "max").
        min_scale: smallest scale.
    """

    def __init__(self, schedule: PlateauScaledSchedule, eval_period: int, metric: str,
                 mode: str = "max", factor: float = 0.5, patience: int = 2,
                 threshold: float = 1e-4, min_scale: float = 0.0):
        self.schedule = schedule
        self.eval_period = eval_period
        self.metric = metric
        self.mode = mode
        self.factor = factor
        self.patience = patience
        self.threshold = threshold
        self.min_scale = min_scale
        self.best: Optional[float] = None
        self.num_bad = 0

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + abs(self.best) * self.threshold
        return value < self.best - abs(self.best) * self.threshold

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if next_iter % self.eval_period or next_iter == self.trainer.max_iter:
            return  # EvalHook evaluates at these iterations (and after the last, too late here)
        value, iteration = self.trainer.storage.latest().get(self.metric, (None, None))
        # the main process holds the evaluation's results; every process steps as it decides
        value, iteration = comm.all_gather((value, iteration))[0]
        if iteration != self.trainer.iter:
            raise KeyError(
                f"SOLVER.PLATEAU.METRIC {self.metric!r} is not among the results of the "
                f"evaluation at iteration {next_iter} "
                f"{sorted(k for k in self.trainer.storage.latest() if '/' in k)}: set it to one "
                f"of the evaluation's keys (task/metric).")
        if math.isnan(value):
            logger.warning("Validation metric %s is NaN at iteration %d: counted as no "
                           "improvement.", self.metric, next_iter)
        if self._improves(value):
            self.best, self.num_bad = float(value), 0
            return
        self.num_bad += 1
        if self.num_bad > self.patience:
            self._reduce(next_iter)
            self.num_bad = 0

    def _reduce(self, iteration: int) -> None:
        old = self.schedule.scale
        new = max(old * self.factor, self.min_scale)
        if new >= old:
            return
        self.schedule.scale = new
        for group in self.trainer.optimizer.param_groups:
            group["lr"] *= new / old
        logger.info("%s has not improved on %s in %d evaluation(s) (iteration %d): learning-rate "
                    "scale %.4g -> %.4g (SOLVER.PLATEAU)", self.metric,
                    "None" if self.best is None else f"{self.best:.4f}", self.patience + 1,
                    iteration, old, new)

    def state_dict(self):
        return {"scale": self.schedule.scale, "best": self.best, "num_bad": self.num_bad}

    def load_state_dict(self, state):
        self.schedule.scale = float(state["scale"])
        self.best = state["best"]
        self.num_bad = int(state["num_bad"])
