"""VertFound losses: log-domain Sinkhorn, OT alignment, ordering and focal."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.utils import logger as detectron2_logger
from torchvision.ops import sigmoid_focal_loss

from vertspine.modeling.vertfound.loss import (
    entropic_ot_objective,
    focal_loss,
    log_sinkhorn,
    ordering_loss,
    ot_alignment_loss,
    sinkhorn,
)


def _problem(seed=0, b=2, n=5, k=4):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(b, n, k, generator=g, dtype=torch.float64)
    a = torch.rand(b, n, generator=g, dtype=torch.float64) + 0.1
    bb = torch.rand(b, k, generator=g, dtype=torch.float64) + 0.1
    return cost, a / a.sum(1, keepdim=True), bb / bb.sum(1, keepdim=True)


def test_log_sinkhorn_marginals_match():
    cost, a, b = _problem()
    plan = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.05, iters=500)
    torch.testing.assert_close(plan.sum(2), a, atol=1e-6, rtol=0)
    torch.testing.assert_close(plan.sum(1), b, atol=1e-10, rtol=0)


def test_log_sinkhorn_equals_plain_sinkhorn_when_well_conditioned():
    cost, a, b = _problem(seed=1)
    plain = sinkhorn(cost, a, b, epsilon=0.5, iters=200)
    stable = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.5, iters=200)
    torch.testing.assert_close(stable, plain, atol=1e-10, rtol=1e-8)


def test_log_sinkhorn_stays_finite_where_the_plain_one_underflows():
    cost, a, b = _problem(seed=2)
    cost = cost * 50
    plain = sinkhorn(cost.float(), a.float(), b.float(), epsilon=0.01, iters=50)
    assert not torch.isfinite(plain).all()  # exp(-5000) underflows to 0 -> 0/0
    plan = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.01, iters=300)
    assert torch.isfinite(plan).all()
    torch.testing.assert_close(plan.sum(1), b, atol=1e-8, rtol=0)


def test_log_sinkhorn_ignores_massless_slots():
    cost, a, b = _problem(seed=3)
    a[:, -2:] = 0
    a = a / a.sum(1, keepdim=True)
    plan = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.1, iters=300)
    assert (plan[:, -2:] == 0).all()
    torch.testing.assert_close(plan.sum(2), a, atol=1e-6, rtol=0)


def _converged_objective(cost, a, b, epsilon):
    """W_eps(C) = <T, C> + eps sum T log T and <T, C>, T from a fully converged Sinkhorn."""
    plan = log_sinkhorn(cost, a.log(), b.log(), epsilon, iters=5000)
    return ((plan * cost).sum() + epsilon * torch.special.xlogy(plan, plan).sum(),
            (plan * cost).sum())


def test_entropic_objective_has_the_exact_gradient_and_the_transport_cost_another():
    cost, a, b = _problem(seed=4, b=1, n=6, k=5)
    epsilon = 0.1
    cost = cost.clone().requires_grad_(True)
    value = entropic_ot_objective(cost, a, b, epsilon, iters=5000, tolerance=1e-12)
    value.sum().backward()
    direction = torch.randn(cost.shape, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        w_plus, t_plus = _converged_objective(cost + h * direction, a, b, epsilon)
        w_minus, t_minus = _converged_objective(cost - h * direction, a, b, epsilon)
        w_0, _ = _converged_objective(cost, a, b, epsilon)
    autograd = (cost.grad * direction).sum()
    assert value.item() == pytest.approx(w_0.item(), rel=1e-9)  # the value it reports is W_eps
    assert autograd.item() == pytest.approx(((w_plus - w_minus) / (2 * h)).item(), rel=1e-6)
    transport = ((t_plus - t_minus) / (2 * h)).item()  # d<T(C), C>: T moves too
    assert abs(transport - autograd.item()) > 0.05 * abs(autograd.item())


def test_sinkhorn_stops_at_the_tolerance_and_warns_when_iterations_run_out(caplog, monkeypatch):
    monkeypatch.setattr(detectron2_logger, "_LOG_TIMER", {})  # the warning is once a minute
    cost, a, b = _problem(seed=5)
    cost = cost * 20  # hard costs: slow convergence at small epsilon
    few = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.05, iters=50)
    assert ((few.sum(2) / a - 1).abs().max() > 0.05)  # 50 fixed iterations: rows far off
    with caplog.at_level("WARNING"):
        log_sinkhorn(cost, a.log(), b.log(), epsilon=0.05, iters=50, tolerance=1e-3)
        log_sinkhorn(cost, a.log(), b.log(), epsilon=0.05, iters=50, tolerance=1e-3)
    assert caplog.text.count("Sinkhorn stopped after 50 iterations") == 1  # not every call
    plan = log_sinkhorn(cost, a.log(), b.log(), epsilon=0.05, iters=100000, tolerance=1e-3)
    assert (plan.sum(2) / a - 1).abs().max() <= 1e-3


def test_assignment_target_is_each_box_cost_to_its_own_level():
    text = F.normalize(torch.randn(4, 3, generator=torch.Generator().manual_seed(1)), dim=-1)
    features = torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(2))
    labels, valid = torch.tensor([[2, 0, 1]]), torch.tensor([[True, True, False]])
    expected = sum(1 - F.cosine_similarity(features[0, i], text[labels[0, i]], dim=0)
                   for i in (0, 1)) / 2  # by hand: the two real boxes, uniform mass
    loss = ot_alignment_loss(features, text, labels, valid, target="assignment")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="OT_TARGET"):
        ot_alignment_loss(features, text, labels, valid, target="pairs")


def test_ot_alignment_loss_is_zero_cost_at_perfect_alignment_and_has_gradient():
    text = F.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    perfect = text[labels].clone()
    assert ot_alignment_loss(perfect, text, labels, valid, 0.01, 200) < 1e-3
    features = torch.randn(2, 4, 8, requires_grad=True)
    loss = ot_alignment_loss(features, text, labels, valid, 0.05, 50)
    loss.backward()
    assert loss > 0.1
    assert features.grad[valid].abs().sum() > 0
    assert (features.grad[~valid] == 0).all()  # padded slots carry no mass


def test_ordering_loss_has_a_gradient_and_is_zero_for_the_right_steps():
    logits = torch.randn(2, 4, 25, requires_grad=True)
    centers = torch.tensor([[30.0, 10.0, 20.0, 40.0], [5.0, 15.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, True, True], [True, True, False, False]])
    labels = torch.tensor([[5, 3, 4, 7], [10, 11, 0, 0]])
    for mode in ("gt_step", "hinge"):
        logits.grad = None
        loss = ordering_loss(logits, centers, valid, labels, mode)
        loss.backward()
        assert loss > 0 and logits.grad.abs().sum() > 0
        assert logits.grad[1, 2:].abs().sum() == 0
    # one-hot-like logits at the right levels, sorted by centre: steps 1, 1, 2 -> zero loss
    sharp = F.one_hot(labels, 25).float() * 100
    assert ordering_loss(sharp, centers, valid, labels, "gt_step") < 1e-6


def test_focal_loss_equals_torchvision_over_valid_boxes():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[0, 4, 2], [1, 0, 0]])
    valid = torch.tensor([[True, True, True], [True, False, False]])
    expected = sigmoid_focal_loss(logits[valid], F.one_hot(labels[valid], 5).float(),
                                  alpha=0.25, gamma=2.0, reduction="sum") / 4
    assert focal_loss(logits, labels, valid) == pytest.approx(float(expected), rel=1e-6)
