"""LVM-Med ResNet-50 backbones: torchvision-layout checkpoints converted to detectron2 names give
the same features as torchvision itself; reports and strict mode name the keys."""
import os

import pytest
import torch
import torchvision
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import build_backbone

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.lvmmed import load_encoder_checkpoint, torchvision_to_d2


def _randomized_resnet50() -> torchvision.models.ResNet:
    """torchvision's ResNet-50 (real key layout) with non-trivial BN statistics, in eval mode."""
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.0)
            module.bias.data.uniform_(-0.1, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def torchvision_checkpoint(tmp_path_factory):
    model = _randomized_resnet50()
    path = str(tmp_path_factory.mktemp("lvmmed") / "lvmmed_resnet.torch")
    torch.save(model.state_dict(), path)
    return {"model": model, "path": path}


def _cfg(weights="", name="build_lvmmed_resnet_backbone", norm="BN", freeze_at=0, **extra):
    cfg = get_vertspine_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    cfg.MODEL.RESNETS.NORM = norm
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    cfg.MODEL.LVMMED.ENCODER_WEIGHTS = weights
    cfg.MODEL.LVMMED.WEIGHTS_LAYOUT = "torchvision_resnet50"
    for key, value in extra.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return cfg


def _torchvision_stages(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outputs = {}
    for index in range(1, 5):
        x = getattr(model, f"layer{index}")(x)
        outputs[f"res{index + 1}"] = x
    return outputs


@pytest.mark.parametrize("key, expected", [
    ("conv1.weight", "stem.conv1.weight"),
    ("bn1.running_var", "stem.conv1.norm.running_var"),
    ("layer1.0.conv2.weight", "res2.0.conv2.weight"),
    ("layer2.3.bn3.bias", "res3.3.conv3.norm.bias"),
    ("layer3.0.downsample.0.weight", "res4.0.shortcut.weight"),
    ("layer4.0.downsample.1.running_mean", "res5.0.shortcut.norm.running_mean"),
    ("fc.weight", "fc.weight"),
])
def test_torchvision_to_d2_names(key, expected):
    assert torchvision_to_d2(key) == expected


@pytest.mark.parametrize("norm", ["BN", "FrozenBN"])
def test_d2_features_equal_torchvision_stages(torchvision_checkpoint, norm):
    backbone = build_backbone(_cfg(torchvision_checkpoint["path"], norm=norm)).eval()
    report = backbone.lvmmed_report
    assert report.complete and not report.missing and not report.unexpected
    assert sorted(report.dropped)[:2] == ["fc.bias", "fc.weight"]
    n_counters = sum(k.endswith("num_batches_tracked)") for k in report.dropped)
    assert n_counters == (53 if norm == "FrozenBN" else 0)  # 53 BatchNorm layers in ResNet-50
    assert len(report.loaded) == len(backbone.state_dict())
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ours = backbone(x)
        reference = _torchvision_stages(torchvision_checkpoint["model"], x)
    for name in ("res2", "res3", "res4", "res5"):
        assert ours[name].shape == reference[name].shape
        torch.testing.assert_close(ours[name], reference[name], rtol=1e-4, atol=1e-4)
    assert list(ours["res5"].shape) == [2, 2048, 2, 3]


def test_freeze_at_two_keeps_checkpoint_values_frozen(torchvision_checkpoint):
    backbone = build_backbone(_cfg(torchvision_checkpoint["path"], freeze_at=2))
    assert isinstance(backbone.stem.conv1.norm, FrozenBatchNorm2d)
    assert not any(p.requires_grad for p in backbone.stem.parameters())
    assert not any(p.requires_grad for p in backbone.res2.parameters())
    assert all(p.requires_grad for p in backbone.res3.parameters())
    source = torchvision_checkpoint["model"].state_dict()
    torch.testing.assert_close(backbone.stem.conv1.norm.running_var, source["bn1.running_var"])
    torch.testing.assert_close(backbone.res2[0].conv1.weight, source["layer1.0.conv1.weight"])


def test_fpn_backbone_loads_bottom_up_and_outputs_p2_to_p6(torchvision_checkpoint):
    cfg = _cfg(torchvision_checkpoint["path"], name="build_lvmmed_resnet_fpn_backbone",
               norm="FrozenBN", freeze_at=2,
               **{"MODEL.FPN.IN_FEATURES": ["res2", "res3", "res4", "res5"],
                  "MODEL.FPN.OUT_CHANNELS": 32})
    backbone = build_backbone(cfg).eval()
    assert backbone.bottom_up.lvmmed_report.complete
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = backbone(x)
        reference = _torchvision_stages(torchvision_checkpoint["model"], x)
        torch.testing.assert_close(backbone.bottom_up(x)["res5"], reference["res5"],
                                   rtol=1e-4, atol=1e-4)
    assert {k: list(v.shape) for k, v in features.items()} == {
        "p2": [1, 32, 16, 16], "p3": [1, 32, 8, 8], "p4": [1, 32, 4, 4], "p5": [1, 32, 2, 2],
        "p6": [1, 32, 1, 1]}


def test_strict_loading_names_missing_and_unexpected_keys(torchvision_checkpoint, tmp_path):
    state = dict(torchvision_checkpoint["model"].state_dict())
    del state["layer3.1.conv2.weight"]
    state["layer9.0.conv1.weight"] = torch.zeros(1)
    path = str(tmp_path / "broken.torch")
    torch.save(state, path)
    with pytest.raises(ValueError) as error:
        build_backbone(_cfg(path))
    assert "res4.1.conv2.weight" in str(error.value)  # missing, in detectron2's name
    assert "layer9.0.conv1.weight" in str(error.value)  # unexpected
    assert "MODEL.LVMMED.STRICT" in str(error.value)

    backbone = build_backbone(_cfg(path, **{"MODEL.LVMMED.STRICT": False}))
    report = backbone.lvmmed_report
    assert report.missing == ["res4.1.conv2.weight"]
    assert report.unexpected == ["res10.0.conv1.weight (checkpoint: layer9.0.conv1.weight)"]
    assert not report.complete and "1 missing, 1 unexpected" in str(report)


def test_shape_mismatch_is_skipped_and_strict_raises(torchvision_checkpoint):
    state = dict(torchvision_checkpoint["model"].state_dict())
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 3, 3)
    resnet = build_backbone(_cfg())
    with pytest.raises(ValueError, match=r"res2\.0\.conv1\.weight \(checkpoint: layer1\.0\.conv1"
                                         r"\.weight\): checkpoint \[64, 64, 3, 3\]"):
        load_encoder_checkpoint(resnet, state, "torchvision_resnet50")
    report = load_encoder_checkpoint(resnet, state, "torchvision_resnet50", strict=False)
    assert list(report.skipped) == ["res2.0.conv1.weight (checkpoint: layer1.0.conv1.weight)"]


def test_detectron2_layout_round_trip(torchvision_checkpoint, tmp_path):
    fpn_inputs = {"MODEL.FPN.IN_FEATURES": ["res2", "res3", "res4", "res5"]}
    source = build_backbone(_cfg(torchvision_checkpoint["path"],
                                 name="build_lvmmed_resnet_fpn_backbone", **fpn_inputs))
    path = str(tmp_path / "model_final.pth")
    torch.save({"model": {f"backbone.{k}": v for k, v in source.state_dict().items()}}, path)
    cfg = _cfg(path, **{"MODEL.LVMMED.WEIGHTS_LAYOUT": "detectron2"})
    backbone = build_backbone(cfg)
    assert backbone.lvmmed_report.complete
    assert sum(k.startswith("backbone.fpn_") for k in backbone.lvmmed_report.dropped) == 16
    torch.testing.assert_close(backbone.res5[2].conv3.weight, source.bottom_up.res5[2].conv3.weight)


@pytest.mark.parametrize("override, message", [
    ({"MODEL.RESNETS.STRIDE_IN_1X1": True}, "STRIDE_IN_1X1 False"),
    ({"MODEL.LVMMED.WEIGHTS_LAYOUT": "sam_vit_b"}, "cannot fill a ResNet backbone"),
])
def test_bad_configs_raise_naming_the_key(torchvision_checkpoint, override, message):
    with pytest.raises(ValueError, match=message):
        build_backbone(_cfg(torchvision_checkpoint["path"], **override))


def test_missing_file_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="MODEL.LVMMED.ENCODER_WEIGHTS"):
        build_backbone(_cfg(os.path.join(str(tmp_path), "absent.torch")))


def test_random_init_when_no_weights():
    backbone = build_backbone(_cfg(""), ShapeSpec(channels=3))
    assert backbone.lvmmed_report.loaded == [] and backbone.lvmmed_report.layout == "none"
