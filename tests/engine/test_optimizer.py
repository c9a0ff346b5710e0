"""Optimizer choice and full-model gradient clipping."""
import pytest
import torch

from vertspine.config import get_vertspine_cfg
from vertspine.engine.optimizer import build_optimizer


def _cfg(**solver):
    cfg = get_vertspine_cfg()
    for key, value in solver.items():
        setattr(cfg.SOLVER, key, value)
    return cfg


@pytest.mark.parametrize("name, expected", [("SGD", torch.optim.SGD), ("ADAMW", torch.optim.AdamW),
                                            ("adamw", torch.optim.AdamW)])
def test_optimizer_is_selected_by_name(name, expected):
    optimizer = build_optimizer(_cfg(OPTIMIZER=name, BETAS=(0.8, 0.9)), torch.nn.Linear(4, 2))
    assert isinstance(optimizer, expected)
    if expected is torch.optim.AdamW:
        assert optimizer.param_groups[0]["betas"] == (0.8, 0.9)


def test_unknown_optimizer_names_the_key():
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER.*'LION'"):
        build_optimizer(_cfg(OPTIMIZER="LION"), torch.nn.Linear(4, 2))


def _step_with_large_gradients(cfg):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    optimizer = build_optimizer(cfg, model)
    (model(torch.randn(5, 4)).sum() * 100).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    return model, grads


def test_full_model_clipping_matches_torch_clip_grad_norm():
    cfg = _cfg(OPTIMIZER="SGD", BASE_LR=1.0, MOMENTUM=0.0, WEIGHT_DECAY=0.0, BIAS_LR_FACTOR=1.0)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    model, grads = _step_with_large_gradients(cfg)
    clipped_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert clipped_norm.item() == pytest.approx(0.5, rel=1e-4)
    # the same scaling as torch.nn.utils.clip_grad_norm_: max_norm / (total_norm + 1e-6)
    raw_norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g * (0.5 / (raw_norm + 1e-6)), rtol=1e-4, atol=1e-7)


class _WithBackbone(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 8)
        self.head = torch.nn.Linear(8, 2)


def test_backbone_multiplier_scales_only_backbone_learning_rates():
    model = _WithBackbone()
    cfg = _cfg(OPTIMIZER="ADAMW", BASE_LR=1e-3, BACKBONE_MULTIPLIER=0.1, BIAS_LR_FACTOR=1.0)
    optimizer = build_optimizer(cfg, model)
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert len(lr_of) == 4  # every parameter once
    for p in model.backbone.parameters():
        assert lr_of[id(p)] == pytest.approx(1e-4)
    for p in model.head.parameters():
        assert lr_of[id(p)] == pytest.approx(1e-3)


def test_backbone_multiplier_without_backbone_names_the_key():
    with pytest.raises(ValueError, match="SOLVER.BACKBONE_MULTIPLIER is 0.1.*no `backbone`"):
        build_optimizer(_cfg(BACKBONE_MULTIPLIER=0.1), torch.nn.Linear(4, 2))
