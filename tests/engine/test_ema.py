"""MODEL_EMA: the moving average of the weights, its checkpoint entry and its evaluation loading."""
import pytest
import torch
from detectron2.engine import hooks

from conftest import INSTANT_CONFIG
from vertspine.config import get_vertspine_cfg
from vertspine.data import register_datasets_from_config
from vertspine.engine import AtomicDetectionCheckpointer, EMAUpdate, Trainer, build_model_ema
from vertspine.engine.ema import averaged_weights


def _ema_cfg(decay=0.9, enabled=True):
    cfg = get_vertspine_cfg()
    cfg.MODEL_EMA.ENABLED = enabled
    cfg.MODEL_EMA.DECAY = decay
    return cfg


def _set_weight(model, value):
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(-value)


def test_disabled_builds_nothing():
    assert build_model_ema(_ema_cfg(enabled=False), torch.nn.Linear(2, 1)) is None


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_bad_decay_names_the_key(decay):
    with pytest.raises(ValueError, match="MODEL_EMA.DECAY"):
        build_model_ema(_ema_cfg(decay), torch.nn.Linear(2, 1))


def test_hook_keeps_the_exponential_average_from_the_loaded_weights():
    model = torch.nn.Linear(2, 1)
    ema = build_model_ema(_ema_cfg(0.9), model)
    hook = EMAUpdate(ema, model)
    _set_weight(model, 100.0)  # loaded after the average was built: the first update copies
    hook.after_step()
    expected = 100.0
    for value in (1.0, 2.0, 3.0):
        _set_weight(model, value)
        hook.after_step()
        expected = 0.9 * expected + 0.1 * value
    assert torch.allclose(ema.module.weight, torch.full((1, 2), expected))
    assert torch.allclose(ema.module.bias, torch.full((1,), -expected))
    assert int(ema.n_averaged) == 4
    assert torch.equal(model.weight, torch.full((1, 2), 3.0))  # the trained weights untouched


def _checkpoint_with_average(tmp_path):
    """model_final.pth with raw weights 3 and averaged weights 5."""
    model = torch.nn.Linear(2, 1)
    ema = build_model_ema(_ema_cfg(), model)
    _set_weight(model, 5.0)
    ema.update_parameters(model)
    _set_weight(model, 3.0)
    checkpointer = AtomicDetectionCheckpointer(model, str(tmp_path), model_ema=ema)
    checkpointer.save("model_final", iteration=9)
    return str(tmp_path / "model_final.pth")


def test_evaluation_loads_the_average_and_training_resumes_both(tmp_path):
    path = _checkpoint_with_average(tmp_path)

    evaluated = torch.nn.Linear(2, 1)
    AtomicDetectionCheckpointer(evaluated, use_ema_weights=True).load(path)
    assert torch.equal(evaluated.weight, torch.full((1, 2), 5.0))
    assert torch.equal(evaluated.bias, torch.full((1,), -5.0))

    raw = torch.nn.Linear(2, 1)
    AtomicDetectionCheckpointer(raw).load(path)
    assert torch.equal(raw.weight, torch.full((1, 2), 3.0))

    resumed = torch.nn.Linear(2, 1)
    resumed_ema = build_model_ema(_ema_cfg(), resumed)
    AtomicDetectionCheckpointer(resumed, str(tmp_path), model_ema=resumed_ema).resume_or_load(
        "", resume=True)
    assert torch.equal(resumed.weight, torch.full((1, 2), 3.0))
    assert torch.equal(resumed_ema.module.weight, torch.full((1, 2), 5.0))
    assert int(resumed_ema.n_averaged) == 1  # the next update averages, it does not copy


def test_checkpoint_without_average_names_the_file_and_the_fix(tmp_path):
    model = torch.nn.Linear(2, 1)
    AtomicDetectionCheckpointer(model, str(tmp_path)).save("plain")
    path = str(tmp_path / "plain.pth")
    with pytest.raises(KeyError, match="plain.pth.*MODEL_EMA.ENABLED False"):
        AtomicDetectionCheckpointer(torch.nn.Linear(2, 1), use_ema_weights=True).load(path)


def test_averaged_weights_are_the_module_entries():
    state = {"n_averaged": torch.tensor(4), "module.weight": torch.ones(1), "module.bias": torch.zeros(1)}
    weights = averaged_weights({"model": {}, "model_ema": state}, "x.pth")
    assert set(weights) == {"weight", "bias"}


def test_trainer_updates_the_average_before_checkpointing_and_evaluating_it(tiny_phantom, tmp_path):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(INSTANT_CONFIG)
    cfg.merge_from_list(tiny_phantom["opts"] + ["MODEL_EMA.ENABLED", "True",
                                                "OUTPUT_DIR", str(tmp_path)])
    register_datasets_from_config(cfg)
    trainer = Trainer(cfg)
    kinds = [type(h) for h in trainer._hooks]
    ema_at = kinds.index(EMAUpdate)
    assert kinds[ema_at - 1] is hooks.LRScheduler
    assert ema_at < kinds.index(hooks.EvalHook) < kinds.index(hooks.PeriodicCheckpointer)
    assert trainer.evaluation_model is trainer.model_ema.module
    assert "model_ema" in trainer.checkpointer.checkpointables


class _ModelWithMasks(torch.nn.Module):
    """A weight, an integer buffer (token ids) and a -inf attention mask, as CLIP's text tower."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.register_buffer("tokens", torch.tensor([49406, 320, 49407]), False)
        self.register_buffer("mask", torch.triu(torch.full((2, 2), float("-inf")), 1), False)


def test_integer_buffers_and_infinite_masks_are_copied_not_averaged():
    model = _ModelWithMasks()
    ema = build_model_ema(_ema_cfg(decay=0.9), model)
    hook = EMAUpdate(ema, model)
    hook.after_step()  # first update: a copy
    expected = torch.ones(3)
    for value in (3.0, -1.0):
        with torch.no_grad():
            model.weight.fill_(value)
        hook.after_step()
        expected = 0.9 * expected + 0.1 * value  # by hand
    torch.testing.assert_close(ema.module.weight.detach(), expected)
    assert torch.equal(ema.module.tokens, model.tokens)  # torch's EMA made 49406 -> 49405
    assert torch.equal(ema.module.mask, model.mask)  # and -inf -> NaN
