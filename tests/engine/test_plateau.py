"""SOLVER.PLATEAU: the learning rate stepped on a validation metric, as torch's
ReduceLROnPlateau would step it on the same values."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from detectron2.solver.lr_scheduler import LRMultiplier, WarmupParamScheduler
from detectron2.utils.events import EventStorage
from fvcore.common.param_scheduler import ConstantParamScheduler

from vertspine.config import get_vertspine_cfg
from vertspine.engine.plateau import (
    PlateauScaledSchedule,
    ValidationPlateau,
    check_plateau_settings,
)

PERIOD = 5


def _optimizer(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _scheduler(optimizer, max_iter=1000):
    schedule = PlateauScaledSchedule(WarmupParamScheduler(ConstantParamScheduler(1.0), 1.0, 0.0))
    return LRMultiplier(optimizer, schedule, max_iter=max_iter), schedule


def _train(values, metric="val/DSC", max_iter=1000, **kwargs):
    """Run the hook on evaluations giving ``values`` (one per PERIOD iterations, the scheduler
    stepping every iteration as detectron2's LRScheduler hook does); the rate after each."""
    optimizer = _optimizer()
    scheduler, schedule = _scheduler(optimizer, max_iter + 1)
    hook = ValidationPlateau(schedule, PERIOD, metric, **kwargs)
    rates = []
    with EventStorage(0) as storage:
        hook.trainer = SimpleNamespace(iter=0, max_iter=max_iter, storage=storage,
                                       optimizer=optimizer)
        for iteration in range(PERIOD * len(values)):
            storage.iter = hook.trainer.iter = iteration
            scheduler.step()
            if (iteration + 1) % PERIOD == 0:  # what EvalHook puts in the storage
                storage.put_scalars(**{"val/DSC": values[iteration // PERIOD]},
                                    smoothing_hint=False)
            hook.after_step()
            if (iteration + 1) % PERIOD == 0:
                rates.append(optimizer.param_groups[0]["lr"])
    return rates, hook


@pytest.mark.parametrize("mode, patience, factor", [("max", 0, 0.5), ("max", 2, 0.1),
                                                    ("min", 1, 0.3)])
def test_rates_equal_torch_reduce_lr_on_plateau(mode, patience, factor):
    rng = np.random.default_rng(0)
    values = list(np.round(rng.uniform(0.5, 0.9, size=30), 2))
    values[10:14] = [float("nan")] * 4  # an evaluation with nothing predicted
    got, _ = _train(values, mode=mode, patience=patience, factor=factor, threshold=1e-4)
    optimizer = _optimizer()
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=factor, patience=patience, threshold=1e-4, eps=0.0)
    expected = []
    for value in values:
        # torch counts NaN as no improvement too (comparisons with NaN are False)
        reference.step(value)
        expected.append(optimizer.param_groups[0]["lr"])
    assert got == pytest.approx(expected, rel=1e-12)
    assert min(got) < 0.1  # the sequence does reduce


def test_scale_never_goes_below_min_scale_and_survives_a_checkpoint():
    rates, hook = _train([0.5] + [0.4] * 9, patience=0, factor=0.5, min_scale=0.2)
    assert rates == pytest.approx([0.1, 0.05, 0.025, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02])
    state = hook.state_dict()
    assert state == {"scale": pytest.approx(0.2), "best": 0.5, "num_bad": 0}
    # a resumed run: a fresh schedule and hook, the checkpoint's state loaded
    scheduler, schedule = _scheduler(_optimizer())
    restored = ValidationPlateau(schedule, PERIOD, "val/DSC")
    restored.load_state_dict(state)
    assert schedule.scale == pytest.approx(0.2) and restored.best == 0.5
    scheduler.step()
    assert scheduler.get_last_lr() == pytest.approx([0.02])


def test_no_evaluation_at_the_last_iteration_and_between_periods():
    # max_iter = 2 periods: EvalHook evaluates the last one after training, not as a step
    rates, hook = _train([0.5, 0.4], max_iter=2 * PERIOD, patience=0)
    assert rates == [0.1, 0.1] and hook.best == 0.5 and hook.num_bad == 0


def test_a_metric_the_evaluation_does_not_give_names_the_key():
    with pytest.raises(KeyError, match=r"SOLVER.PLATEAU.METRIC 'bbox/AP'.*val/DSC"):
        _train([0.5], metric="bbox/AP")


@pytest.mark.parametrize("overrides, key", [
    (["TEST.EVAL_PERIOD", 0], "TEST.EVAL_PERIOD"),
    (["SOLVER.PLATEAU.MODE", "best"], "SOLVER.PLATEAU.MODE"),
    (["SOLVER.PLATEAU.FACTOR", 1.5], "SOLVER.PLATEAU.FACTOR"),
    (["SOLVER.PLATEAU.PATIENCE", -1], "PATIENCE"),
])
def test_bad_settings_name_the_key(overrides, key):
    cfg = get_vertspine_cfg()
    cfg.merge_from_list(["SOLVER.PLATEAU.METRIC", "bbox/AP", "TEST.EVAL_PERIOD", 10,
                         "DATASETS.TEST", ("val",), *overrides])
    with pytest.raises(ValueError, match=key):
        check_plateau_settings(cfg)
