"""UNetSegmentor: an unpatched smp U-Net whose ResNet encoder takes torchvision-layout weights
as they are; CE + soft Dice equals MONAI's DiceCELoss; one training step and inference."""
import pytest
import segmentation_models_pytorch as smp
import torch
import torchvision
from detectron2.modeling import build_model
from monai.losses import DiceCELoss

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.lvmmed import UNetSegmentor, dice_ce_loss, load_encoder_checkpoint


def test_smp_resnet50_encoder_uses_torchvision_names():
    unet = smp.Unet("resnet50", encoder_weights=None, classes=2)
    reference = torchvision.models.resnet50(weights=None).eval()
    for module in reference.modules():  # non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 1.5)
    expected = {k for k in reference.state_dict() if not k.startswith("fc.")}
    assert set(unet.encoder.state_dict()) == expected  # smp: torchvision ResNet minus fc/avgpool

    report = load_encoder_checkpoint(unet.encoder, reference.state_dict(), "torchvision_resnet50",
                                     target="torchvision")
    assert report.complete and sorted(report.dropped) == ["fc.bias", "fc.weight"]
    assert len(report.loaded) == len(expected)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = unet.encoder.eval()(x)
        tv = reference.layer4(reference.layer3(reference.layer2(reference.layer1(
            reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))
    torch.testing.assert_close(features[-1], tv, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("include_background", [True, False])
def test_dice_ce_equals_monai_and_ignores_padding(include_background):
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 12, 10)
    target = torch.randint(0, 3, (2, 12, 10))
    target[1] = (target[1] > 0).long()  # an image without class 2 (empty ground truth)
    monai = DiceCELoss(softmax=True, to_onehot_y=True, include_background=include_background)
    expected = monai(logits, target[:, None])
    ours = dice_ce_loss(logits, target, include_background=include_background)
    torch.testing.assert_close(ours["loss_ce"] + ours["loss_dice"], expected)

    padded_logits = torch.randn(2, 3, 16, 16) * 5  # padding contributes nothing
    padded_logits[:, :, :12, :10] = logits
    padded_target = torch.full((2, 16, 16), 255, dtype=torch.long)
    padded_target[:, :12, :10] = target
    padded = dice_ce_loss(padded_logits, padded_target, include_background=include_background)
    torch.testing.assert_close(padded["loss_ce"], ours["loss_ce"])
    torch.testing.assert_close(padded["loss_dice"], ours["loss_dice"])


def test_labels_beyond_num_classes_raise():
    with pytest.raises(ValueError, match=r"labels \[3\].*MODEL.LVMMED.UNET.NUM_CLASSES"):
        dice_ce_loss(torch.zeros(1, 3, 4, 4), torch.full((1, 4, 4), 3))
    logits = torch.zeros(1, 3, 4, 4, requires_grad=True)
    all_ignored = dice_ce_loss(logits, torch.full((1, 4, 4), 255))
    assert float(all_ignored["loss_ce"].detach()) == 0.0 and all_ignored["loss_ce"].requires_grad


def _tiny_cfg(**unet):
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE = "UNetSegmentor"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.LVMMED.UNET.ENCODER_NAME = "resnet18"
    cfg.MODEL.LVMMED.UNET.DECODER_CHANNELS = [32, 16, 16, 8, 8]
    cfg.MODEL.LVMMED.UNET.NUM_CLASSES = 2
    for key, value in unet.items():
        cfg.MODEL.LVMMED.UNET[key] = value
    return cfg


def _inputs():
    torch.manual_seed(1)
    return [
        {"image": torch.randint(0, 256, (3, 48, 40)).float(),
         "sem_seg": torch.randint(0, 3, (48, 40)), "height": 96, "width": 80},
        {"image": torch.randint(0, 256, (3, 64, 64)).float(),
         "sem_seg": torch.zeros(64, 64).long()},
    ]


def test_training_step_and_inference():
    model = build_model(_tiny_cfg())
    assert isinstance(model, UNetSegmentor)
    model.train()
    losses = model(_inputs())
    assert set(losses) == {"loss_ce", "loss_dice"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.unet.encoder.conv1.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        outputs = model(_inputs())
    assert list(outputs[0]["sem_seg"].shape) == [3, 96, 80]  # resized to height x width
    assert list(outputs[1]["sem_seg"].shape) == [3, 64, 64]
    torch.testing.assert_close(outputs[0]["sem_seg"].sum(0), torch.ones(96, 80))


def test_frozen_encoder_keeps_weights_and_statistics():
    model = build_model(_tiny_cfg(FREEZE_ENCODER=True)).train()
    assert not model.unet.encoder.training and model.unet.decoder.training
    before = model.unet.encoder.bn1.running_mean.clone()
    sum(model(_inputs()).values()).backward()
    assert all(p.grad is None for p in model.unet.encoder.parameters())
    torch.testing.assert_close(model.unet.encoder.bn1.running_mean, before)


def test_three_channel_input_required():
    cfg = _tiny_cfg()
    cfg.INPUT.FORMAT = "L"
    with pytest.raises(ValueError, match="INPUT.FORMAT"):
        build_model(cfg)


def test_num_classes_checked_against_the_dataset():
    from vertspine.data import check_num_classes

    cfg = _tiny_cfg()  # NUM_CLASSES 2; phantom_spine_seg has one foreground class
    with pytest.raises(ValueError, match=r"MODEL.LVMMED.UNET.NUM_CLASSES 1"):
        check_num_classes(cfg, ["phantom_spine_seg_val"])
    cfg.MODEL.LVMMED.UNET.NUM_CLASSES = 1
    check_num_classes(cfg, ["phantom_spine_seg_val"])
