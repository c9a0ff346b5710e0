"""ValidationLoss: mean training losses over fixed validation batches, BatchNorm untouched."""
from types import SimpleNamespace

import pytest
import torch
from detectron2.utils.events import EventStorage

from vertspine.engine.hooks import ValidationLoss, norm_layers_frozen


class _LossModel(torch.nn.Module):
    """Returns {"loss_a": mean(bn(x)), "loss_b": 2} like a detectron2 model in training mode."""

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm1d(1)

    def forward(self, batch):
        x = torch.tensor([[float(v)] for v in batch])
        return {"loss_a": self.bn(x).mean() + x.mean(), "loss_b": torch.tensor(2.0)}


def _run_hook(model, loader, iteration, max_iter=100, period=10, num_batches=2):
    hook = ValidationLoss(period, loader, num_batches)
    with EventStorage(iteration) as storage:
        hook.trainer = SimpleNamespace(model=model, iter=iteration, max_iter=max_iter,
                                       storage=storage)
        hook.after_step()
        return {k: v[0] for k, v in storage.latest().items()}


def test_validation_loss_is_the_mean_over_the_first_batches():
    model = _LossModel().train()
    loader = [[1.0, 3.0], [5.0, 7.0], [100.0, 100.0]]  # the third batch is beyond num_batches
    scalars = _run_hook(model, loader, iteration=9)
    # eval-mode BN with fresh statistics is the identity (up to eps): loss_a = 2 * mean(x)
    assert scalars["val_loss_a"] == pytest.approx((2 * 2.0 + 2 * 6.0) / 2, rel=1e-4)
    assert scalars["val_loss_b"] == pytest.approx(2.0)
    assert scalars["val_total_loss"] == pytest.approx(8.0 + 2.0, rel=1e-4)
    assert model.training and model.bn.training
    assert torch.equal(model.bn.running_mean, torch.zeros(1))  # statistics not updated


def test_validation_loss_runs_only_on_its_period_and_at_the_end():
    model = _LossModel().train()
    assert _run_hook(model, [[1.0]], iteration=4) == {}
    assert "val_total_loss" in _run_hook(model, [[1.0]], iteration=99, max_iter=100)


def test_norm_layers_frozen_restores_modes():
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2), torch.nn.BatchNorm2d(2)).train()
    model[1].eval()
    with norm_layers_frozen(model):
        assert not model[0].training and not model[1].training
    assert model[0].training and not model[1].training


@pytest.mark.parametrize("period, batches", [(0, 2), (5, 0)])
def test_bad_settings_name_the_keys(period, batches):
    with pytest.raises(ValueError, match="TEST.VAL_LOSS_PERIOD"):
        ValidationLoss(period, [], batches)
