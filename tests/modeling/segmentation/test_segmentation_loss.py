"""dice_ce_loss equals MONAI's DiceCELoss with matched settings (softmax or sigmoid, squared_pred,
include_background, weights) in 2D and 3D; ignored elements (padding) contribute nothing."""
import pytest
import torch
from monai.losses import DiceCELoss

from vertspine.modeling.segmentation import dice_ce_loss

SHAPES = {"2d": (2, 12, 10), "3d": (2, 6, 5, 4)}  # [N, *spatial]


def _softmax_case(shape, seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(shape[0], 3, *shape[1:])
    target = torch.randint(0, 3, shape)
    target[1] = (target[1] > 0).long()  # an image without class 2 (empty ground truth)
    return logits, target


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("squared_pred", [False, True])
def test_softmax_equals_monai(dims, include_background, squared_pred):
    logits, target = _softmax_case(SHAPES[dims])
    monai = DiceCELoss(softmax=True, to_onehot_y=True, include_background=include_background,
                       squared_pred=squared_pred, lambda_dice=0.7, lambda_ce=0.3)
    ours = dice_ce_loss(logits, target, include_background=include_background,
                        squared_pred=squared_pred, dice_weight=0.7, ce_weight=0.3)
    torch.testing.assert_close(ours["loss_ce"] + ours["loss_dice"], monai(logits, target[:, None]))


@pytest.mark.parametrize("dims", sorted(SHAPES))
def test_sigmoid_equals_monai_as_vesselfm_uses_it(dims):
    torch.manual_seed(1)
    shape = SHAPES[dims]
    logits = torch.randn(shape[0], 1, *shape[1:]) * 2
    target = (torch.rand(shape) < 0.3).long()
    target[1] = 0  # empty ground truth
    monai = DiceCELoss(sigmoid=True, squared_pred=True, lambda_dice=0.9, lambda_ce=0.1)
    ours = dice_ce_loss(logits, target, activation="sigmoid", squared_pred=True,
                        dice_weight=0.9, ce_weight=0.1)
    expected = monai(logits, target[:, None].float())
    torch.testing.assert_close(ours["loss_ce"] + ours["loss_dice"], expected)
    bce = DiceCELoss(sigmoid=True, lambda_dice=0.0, lambda_ce=1.0)
    torch.testing.assert_close(ours["loss_ce"] / 0.1, bce(logits, target[:, None].float()))


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_padding_contributes_nothing(dims, activation):
    logits, target = _softmax_case(SHAPES[dims], seed=2)
    if activation == "sigmoid":
        logits, target = logits[:, :1], (target > 0).long()
    ours = dice_ce_loss(logits, target, activation=activation)
    padded_logits = torch.randn(*logits.shape[:2], *(s + 3 for s in logits.shape[2:])) * 5
    padded_target = torch.full((target.shape[0], *padded_logits.shape[2:]), 255)
    region = (..., *(slice(0, s) for s in target.shape[1:]))
    padded_logits[region] = logits
    padded_target[region] = target
    padded = dice_ce_loss(padded_logits, padded_target, activation=activation)
    torch.testing.assert_close(padded["loss_ce"], ours["loss_ce"])
    torch.testing.assert_close(padded["loss_dice"], ours["loss_dice"])


def test_labels_beyond_num_classes_raise_and_all_ignored_is_zero():
    with pytest.raises(ValueError, match=r"labels \[3\].*MODEL.SEGMENTOR.NUM_CLASSES = 2"):
        dice_ce_loss(torch.zeros(1, 3, 4, 4), torch.full((1, 4, 4), 3))
    with pytest.raises(ValueError, match=r"labels \[2\].*NUM_CLASSES = 1"):
        dice_ce_loss(torch.zeros(1, 1, 4, 4, 4), torch.full((1, 4, 4, 4), 2), activation="sigmoid")
    with pytest.raises(ValueError, match="one channel"):
        dice_ce_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4).long(), activation="sigmoid")
    logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    all_ignored = dice_ce_loss(logits, torch.full((1, 4, 4), 255))
    assert float(all_ignored["loss_ce"].detach()) == 0.0 and all_ignored["loss_ce"].requires_grad
