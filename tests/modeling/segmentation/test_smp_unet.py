"""smp_unet: an unpatched smp U-Net whose ResNet encoder takes torchvision-layout weights as they
are (LVM-Med's ResNet-50 file); frozen encoder; input checks; the class-count key."""
import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
import torchvision
from detectron2.modeling import build_model

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.segmentation import Segmentor, load_encoder_weights


@pytest.fixture(scope="module")
def resnet18_state():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    for module in reference.modules():  # non-trivial statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 1.5)
    return reference


def test_encoder_takes_torchvision_names_and_computes_as_torchvision(resnet18_state, tmp_path):
    unet = smp.Unet("resnet18", encoder_weights=None, classes=2)
    expected = {k for k in resnet18_state.state_dict() if not k.startswith("fc.")}
    assert set(unet.encoder.state_dict()) == expected  # smp: torchvision ResNet minus fc/avgpool
    path = str(tmp_path / "resnet18.pth")
    torch.save(resnet18_state.state_dict(), path)
    report = load_encoder_weights(unet.encoder, path)
    assert report.complete and len(report.loaded) == len(expected) == 120  # incl. BN counters
    assert "2 classifier keys fc.* dropped" in report.title and path in report.title
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = unet.encoder.eval()(x)
        ref = resnet18_state
        stem = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        tv = ref.layer4(ref.layer3(ref.layer2(ref.layer1(stem))))
    torch.testing.assert_close(features[-1], tv, rtol=1e-5, atol=1e-5)


def test_strict_load_names_the_keys_and_the_fix(resnet18_state):
    unet = smp.Unet("resnet34", encoder_weights=None, classes=2)  # deeper than the file
    with pytest.raises(ValueError, match=r"(?s)SMP_UNET.ENCODER_WEIGHTS.*layer1.2.conv1.weight"
                                         r".*ENCODER_NAME"):
        load_encoder_weights(unet.encoder, resnet18_state.state_dict())
    before = unet.encoder.conv1.weight.clone()
    with pytest.raises(ValueError):
        load_encoder_weights(unet.encoder, resnet18_state.state_dict())
    torch.testing.assert_close(unet.encoder.conv1.weight, before)  # nothing copied
    report = load_encoder_weights(unet.encoder, resnet18_state.state_dict(), strict=False)
    assert not report.complete and "layer1.2.conv1.weight" in report.missing
    torch.testing.assert_close(unet.encoder.conv1.weight, resnet18_state.conv1.weight)


def _tiny_cfg(**segmentor):
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE = "Segmentor"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.SEGMENTOR.SMP_UNET.ENCODER_NAME = "resnet18"
    cfg.MODEL.SEGMENTOR.SMP_UNET.DECODER_CHANNELS = [32, 16, 16, 8, 8]
    cfg.MODEL.SEGMENTOR.NUM_CLASSES = 2
    for key, value in segmentor.items():
        cfg.MODEL.SEGMENTOR[key] = value
    return cfg


def _inputs():
    torch.manual_seed(1)
    return [
        {"image": torch.randint(0, 256, (3, 48, 40)).float(),
         "sem_seg": torch.randint(0, 3, (48, 40)), "height": 96, "width": 80},
        {"image": torch.randint(0, 256, (3, 64, 64)).float(),
         "sem_seg": torch.zeros(64, 64).long()},
    ]


def test_weights_file_from_config(resnet18_state, tmp_path):
    path = str(tmp_path / "resnet18.pth")
    torch.save(resnet18_state.state_dict(), path)
    cfg = _tiny_cfg()
    cfg.MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS = path
    model = build_model(cfg)
    assert isinstance(model, Segmentor) and model.size_divisibility == (32, 32)
    assert model.unet.encoder_report.complete
    torch.testing.assert_close(model.unet.encoder.layer4[1].conv2.weight,
                               resnet18_state.layer4[1].conv2.weight)
    assert build_model(_tiny_cfg()).unet.encoder_report is None  # random init


def test_inference_pads_to_32_and_resizes_to_the_record():
    model = build_model(_tiny_cfg()).eval()
    image = _inputs()[0]["image"]
    with torch.no_grad():
        outputs = model(_inputs())
        normalised = (image - model.pixel_mean) / model.pixel_std
        logits = model.unet(F.pad(normalised, (0, 24, 0, 16))[None])[0, :, :48, :40]
    assert list(outputs[0]["sem_seg"].shape) == [3, 96, 80]  # resized to height x width
    assert list(outputs[1]["sem_seg"].shape) == [3, 64, 64]
    expected = F.interpolate(logits[None], (96, 80), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(outputs[0]["sem_seg"], expected.softmax(0))


def test_frozen_encoder_keeps_weights_and_statistics():
    model = build_model(_tiny_cfg(FREEZE_ENCODER=True)).train()
    assert not model.unet.encoder.training and model.unet.decoder.training
    before = model.unet.encoder.bn1.running_mean.clone()
    sum(model(_inputs()).values()).backward()
    assert all(p.grad is None for p in model.unet.encoder.parameters())
    assert model.unet.decoder.blocks[0].conv1[0].weight.grad.abs().sum() > 0
    torch.testing.assert_close(model.unet.encoder.bn1.running_mean, before)


def test_input_channels_must_match_the_format_and_statistics():
    cfg = _tiny_cfg()
    cfg.INPUT.FORMAT = "L"
    with pytest.raises(ValueError, match="INPUT.FORMAT 'L' gives 1-channel"):
        build_model(cfg)
    cfg.MODEL.SEGMENTOR.IN_CHANNELS = 1
    with pytest.raises(ValueError, match="MODEL.PIXEL_MEAN"):
        build_model(cfg)
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [128.0], [64.0]
    model = build_model(cfg)
    assert model.unet.encoder.conv1.in_channels == 1
    with pytest.raises(ValueError, match="'smp_unet' is 2D"):
        build_model(_tiny_cfg(SPATIAL_DIMS=3))


def test_num_classes_checked_against_the_dataset():
    from vertspine.data import check_num_classes

    cfg = _tiny_cfg()  # NUM_CLASSES 2; phantom_spine_seg has one foreground class
    with pytest.raises(ValueError, match=r"MODEL.SEGMENTOR.NUM_CLASSES 1"):
        check_num_classes(cfg, ["phantom_spine_seg_val"])
    cfg.MODEL.SEGMENTOR.NUM_CLASSES = 1
    check_num_classes(cfg, ["phantom_spine_seg_val"])
