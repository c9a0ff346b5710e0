"""build_timm_backbone: outputs from timm's feature_info, and torchvision DenseNet/ResNet
checkpoints loading through MODEL.WEIGHTS with outputs equal to torchvision's."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from detectron2.modeling import build_backbone, build_model

from vertspine.config import get_vertspine_cfg
from vertspine.engine import AtomicDetectionCheckpointer
from vertspine.modeling.classification import (
    TimmBackbone,
    backbone_loaded_fully,
    convert_torchvision_to_timm,
)


def _cfg(name):
    cfg = get_vertspine_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.BACKBONE.NAME = "build_timm_backbone"
    cfg.MODEL.TIMM.NAME = name
    cfg.MODEL.IMAGE_CLASSIFIER.IN_FEATURE = "final"
    return cfg


def test_outputs_follow_feature_info():
    backbone = build_backbone(_cfg("test_resnet"))
    info = backbone.body.feature_info
    shapes = backbone.output_shape()
    assert list(shapes) == ["stage1", "stage2", "stage3", "stage4", "stage5", "final"]
    assert [shapes[f"stage{i + 1}"].channels for i in range(5)] == info.channels()
    strides = [shapes[f"stage{i + 1}"].stride for i in range(5)]
    assert strides == info.reduction() == [2, 4, 8, 16, 32]
    assert shapes["final"] == shapes["stage5"]
    features = backbone(torch.zeros(2, 3, 64, 96))
    for name, spec in shapes.items():
        assert features[name].shape == (2, spec.channels, 64 // spec.stride, 96 // spec.stride)
    assert features["final"] is features["stage5"]


def test_out_indices_and_unknown_names():
    cfg = _cfg("test_resnet")
    cfg.MODEL.TIMM.OUT_INDICES = [2, 3]
    assert list(build_backbone(cfg).output_shape()) == ["stage3", "stage4", "final"]
    with pytest.raises(ValueError, match="MODEL.TIMM.NAME 'densenet122'"):
        TimmBackbone("densenet122")


def _randomise_batchnorm(model, seed=0):
    """Non-default BN statistics and affine parameters, so a mis-loaded BN shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("name", ["densenet121", "resnet18"])
def test_torchvision_checkpoint_loads_through_model_weights(name, tmp_path):
    torch.manual_seed(0)
    reference = _randomise_batchnorm(getattr(torchvision.models, name)(weights=None))
    path = str(tmp_path / f"{name}_torchvision.pth")
    torch.save(reference.state_dict(), path)

    model = build_model(_cfg(name)).eval()
    AtomicDetectionCheckpointer(model).load(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final = model.backbone(x)["final"]
        if name == "densenet121":  # timm's norm5 includes torchvision's final ReLU
            expected = F.relu(reference.features(x))
        else:
            r = reference
            expected = r.layer4(r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x))))))))
    assert torch.allclose(final, expected, atol=1e-5)


def test_conversion_report_and_old_densenet_keys():
    reference = torchvision.models.densenet121(weights=None).state_dict()
    old_style = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v
                 for k, v in reference.items()}  # pre-0.3 torchvision file layout
    backbone = TimmBackbone("densenet121")
    target = backbone.body.state_dict()
    converted, report = convert_torchvision_to_timm(old_style, target)
    assert backbone_loaded_fully(report) and set(converted) == set(target)
    assert sorted(report.unexpected) == ["classifier.bias", "classifier.weight"]
    assert torch.equal(converted["features_denseblock2.denselayer3.norm1.weight"],
                       reference["features.denseblock2.denselayer3.norm1.weight"])
    bad = dict(reference)
    bad["features.conv0.weight"] = torch.zeros(64, 1, 7, 7)
    _, report = convert_torchvision_to_timm(bad, target)
    assert list(report.skipped) == ["features_conv0.weight"] and not backbone_loaded_fully(report)
    assert "checkpoint [64, 1, 7, 7], model [64, 3, 7, 7]" in report.skipped["features_conv0.weight"]
    assert not report.missing  # a skipped key is reported once, as skipped
