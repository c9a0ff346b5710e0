"""LiteMedSAM's loss terms against their definitions computed by hand, and the IoU target."""
import numpy as np
import pytest
import torch

from vertspine.modeling.prompt_seg import PromptSegLoss, mask_iou


def test_mask_iou_and_the_empty_case():
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    gt = torch.zeros(3, 4, 4, dtype=torch.bool)
    pred[0, :2, :2] = True  # 4 px
    gt[0, :2, :] = True  # 8 px, 4 shared: IoU 0.5
    gt[1, 0, 0] = True  # prediction empty: IoU 0
    # box 2: both empty -> 1 (LiteMedSAM's cal_iou gives 0 / 0 = NaN)
    assert mask_iou(pred, gt).tolist() == [0.5, 0.0, 1.0]


def test_loss_terms_equal_their_definitions():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, 8, generator=g) * 3
    gt = (torch.rand(3, 8, 8, generator=g) > 0.6).to(torch.uint8)
    iou_pred = torch.tensor([0.2, 0.9, 0.5])
    losses = PromptSegLoss(dice_weight=2.0, bce_weight=0.5, iou_weight=3.0)(logits, gt, iou_pred)

    x, t = logits.double().numpy(), gt.double().numpy()
    p = 1 / (1 + np.exp(-x))
    # MONAI DiceLoss(sigmoid, squared_pred): per box 1 - (2 sum(pt) + 1e-5) / (sum p^2 + sum t^2
    # + 1e-5), then the mean over boxes
    dice = np.mean([1 - (2 * (p[i] * t[i]).sum() + 1e-5) / ((p[i] ** 2).sum() + (t[i] ** 2).sum()
                                                           + 1e-5) for i in range(3)])
    bce = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
    pb, tb = p > 0.5, t > 0.5
    iou_true = (pb & tb).sum((1, 2)) / (pb | tb).sum((1, 2))
    mse = np.mean((iou_pred.double().numpy() - iou_true) ** 2)
    assert losses["loss_dice"].item() == pytest.approx(2.0 * dice, rel=1e-5)
    assert losses["loss_bce"].item() == pytest.approx(0.5 * bce, rel=1e-5)
    assert losses["loss_iou"].item() == pytest.approx(3.0 * mse, rel=1e-5)
