"""Soft skeleton and soft clDice (Shit et al. 2021): parity with a scipy computation of the same
min/max-pooling recursion, known values on hand-made tubes, and the Segmentor's CLDICE keys (with
deep supervision)."""
import os

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from scipy import ndimage

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.modeling.segmentation import dice_ce_loss
from vertspine.modeling.segmentation.loss import soft_cldice_loss, soft_skeleton


def _numpy_skeleton(x: np.ndarray, iterations: int) -> np.ndarray:
    """The recursion on one [*spatial] array with scipy filters: erosion = minimum over the
    face-connected cross, dilation = maximum over the 3^d box ("nearest" edges equal pooling
    that ignores outside elements)."""
    cross = ndimage.generate_binary_structure(x.ndim, 1)

    def erode(a):
        return ndimage.minimum_filter(a, footprint=cross, mode="nearest")

    def opened(a):
        return ndimage.maximum_filter(erode(a), size=3, mode="nearest")

    skeleton = np.maximum(x - opened(x), 0)
    for _ in range(iterations):
        x = erode(x)
        delta = np.maximum(x - opened(x), 0)
        skeleton = skeleton + np.maximum(delta - skeleton * delta, 0)
    return skeleton


def _tube(shape, centre, radius, axis=0):
    """Binary cylinder along ``axis`` through ``centre`` (the other axes' coordinates)."""
    grid = np.indices(shape).astype(float)
    others = [a for a in range(len(shape)) if a != axis]
    distance = np.sqrt(sum((grid[a] - c) ** 2 for a, c in zip(others, centre)))
    return (distance <= radius).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 1, 14, 12), (2, 1, 10, 9, 8)], ids=["2d", "3d"])
def test_soft_skeleton_equals_scipy(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = soft_skeleton(x, 4).numpy()
    for n in range(shape[0]):
        np.testing.assert_allclose(ours[n, 0], _numpy_skeleton(x[n, 0].numpy(), 4), atol=1e-12)


def test_skeleton_of_a_tube_is_its_centre_line():
    tube = _tube((12, 15, 15), (7, 7), 2.0)  # radius-2 cylinder along axis 0
    skeleton = soft_skeleton(torch.from_numpy(tube)[None, None], 3)[0, 0].numpy()
    assert set(np.unique(skeleton)) <= {0.0, 1.0}  # binary in, binary out
    assert skeleton[tube == 0].max() == 0  # inside the tube only
    inner = skeleton[1:-1]  # away from the ends (not eroded: pooling ignores the outside)
    np.testing.assert_array_equal(np.argwhere(inner.any(0)), [[7, 7]])


@pytest.mark.parametrize("dims", [2, 3])
def test_perfect_prediction_has_zero_loss(dims):
    tube = _tube((16,) * dims, (8,) * (dims - 1), 2.5)
    target = torch.from_numpy(tube)[None, None]
    assert float(soft_cldice_loss(target, target, 5)) == pytest.approx(0.0, abs=1e-7)


def test_cldice_value_equals_direct_computation():
    truth = _tube((16, 16, 16), (5, 5), 2.0) + _tube((16, 16, 16), (11, 11), 1.5)  # two tubes
    pred = _tube((16, 16, 16), (5, 6), 2.0) * 0.9  # one tube found, shifted, soft
    pred = pred + 0.05 * np.random.default_rng(0).random(pred.shape).astype(np.float32)
    s_pred, s_true = _numpy_skeleton(pred, 3), _numpy_skeleton(truth, 3)
    tprec = ((s_pred * truth).sum() + 1) / (s_pred.sum() + 1)
    tsens = ((s_true * pred).sum() + 1) / (s_true.sum() + 1)
    expected = 1 - 2 * tprec * tsens / (tprec + tsens)
    ours = soft_cldice_loss(torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None])
    assert float(ours) == pytest.approx(expected, rel=1e-5)
    assert 0.3 < expected < 0.8  # half of the vessel length is missed


@pytest.mark.parametrize("activation,channels", [("sigmoid", 1), ("softmax", 2)])
def test_dice_ce_loss_adds_weighted_cldice_on_foreground(activation, channels):
    torch.manual_seed(0)
    logits = torch.randn(2, channels, 8, 8, 8, requires_grad=True)
    target = torch.from_numpy(_tube((8, 8, 8), (4, 4), 2.0)).long().expand(2, -1, -1, -1).clone()
    target[1, :, :, 6:] = 255  # ignored: counts as neither prediction nor vessel
    losses = dice_ce_loss(logits, target, activation=activation, cldice_weight=0.5,
                          cldice_iterations=2)
    valid = (target != 255).unsqueeze(1).float()
    probs = logits.sigmoid() if activation == "sigmoid" else logits.softmax(1)[:, 1:]
    expected = 0.5 * soft_cldice_loss(probs * valid, (target == 1).unsqueeze(1).float(), 2)
    torch.testing.assert_close(losses["loss_cldice"], expected)
    losses["loss_cldice"].backward()
    assert float(logits.grad.abs().sum()) > 0
    assert "loss_cldice" not in dice_ce_loss(logits, target, activation=activation)


@pytest.mark.parametrize("weight,iterations,key", [(-0.1, 3, "CLDICE_WEIGHT"),
                                                   (1.0, 0, "CLDICE_ITERATIONS")])
def test_bad_cldice_settings_name_the_key(weight, iterations, key):
    with pytest.raises(ValueError, match=f"MODEL.SEGMENTOR.{key}"):
        dice_ce_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long),
                     activation="sigmoid", cldice_weight=weight, cldice_iterations=iterations)


def test_segmentor_adds_cldice_to_every_deeply_supervised_head():
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "quick_schedules",
                                     "dynunet_vessel_instant_test.yaml"))
    cfg.MODEL.SEGMENTOR.DYNUNET.DEEP_SUPERVISION = True
    model = build_model(cfg)
    assert model.loss_args["cldice_weight"] == 0.5 and model.loss_args["cldice_iterations"] == 2
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 1, 8, 8, 8)  # [N, heads, C, *spatial]
    target = torch.from_numpy(_tube((8, 8, 8), (4, 4), 2.0)).long().expand(2, -1, -1, -1)
    losses = model.losses(logits, target)
    heads = [dice_ce_loss(logits[:, i], target, **model.loss_args)["loss_cldice"] for i in (0, 1)]
    torch.testing.assert_close(losses["loss_cldice"], heads[0] + 0.5 * heads[1])
