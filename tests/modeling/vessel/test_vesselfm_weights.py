"""vesselFM weight files (plain ``vesselFM_base.pt`` and Lightning ``model.``-prefixed
checkpoints) load strictly into the Segmentor's DynUNet, directly and through MODEL.WEIGHTS;
missing, unreadable and other-architecture files are errors naming the file and the fix."""
import os

import pytest
import torch
from detectron2.modeling import build_model
from monai.networks.nets import DynUNet
from torch import nn

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.engine import AtomicDetectionCheckpointer, load_evaluation_weights
from vertspine.modeling.segmentation import build_segmentation_network
from vertspine.modeling.vessel import load_vesselfm_weights
from vertspine.modeling.vessel.weights import vesselfm_checkpoint_layout
from vertspine.utils.state_dict import CheckpointReadError

INSTANT = os.path.join(REPO_ROOT, "configs", "quick_schedules", "dynunet_vessel_instant_test.yaml")
VESSELFM = os.path.join(REPO_ROOT, "configs", "vessels", "dynunet_vesselfm_1200it_finetune.yaml")


def _cfg(path=INSTANT):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(path)
    return cfg


def _reference(filters=(8, 16, 32)):
    """A MONAI DynUNet as vesselFM builds it (its layout), at the instant config's size."""
    torch.manual_seed(123)
    strides = [1] + [2] * (len(filters) - 1)
    return DynUNet(3, 1, 1, [3] * len(filters), strides, strides[1:], filters=list(filters),
                   res_block=True)


def _write(tmp_path, layout, state):
    path = str(tmp_path / ("vesselFM_base.pt" if layout == "plain" else "finetune.ckpt"))
    if layout == "lightning":
        state = {"state_dict": {f"model.{key}": value for key, value in state.items()},
                 "epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.1.0"}
    torch.save(state, path)
    return path


def _model(*overrides):
    torch.manual_seed(0)
    cfg = _cfg()
    cfg.merge_from_list(list(overrides))
    return build_model(cfg)


def _assert_loaded(network, reference):
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(network.state_dict()[key], value, rtol=0, atol=0)


def test_full_vesselfm_configuration_has_monai_layout():
    """Names and shapes of configs/vessels' network equal vesselFM's DynUNet, built on the meta
    device (no memory, nothing run)."""
    cfg = _cfg(VESSELFM)
    with torch.device("meta"):
        ours = build_segmentation_network(cfg).module.state_dict()
        theirs = DynUNet(3, 1, 1, [3] * 6, [1, 2, 2, 2, 2, 2], [2] * 5,
                         filters=[32, 64, 128, 256, 320, 320], res_block=True).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[key].shape == theirs[key].shape for key in theirs)
    assert theirs["input_block.conv1.conv.weight"].shape == (32, 1, 3, 3, 3)
    assert theirs["output_block.conv.conv.weight"].shape == (1, 32, 1, 1, 1)


@pytest.mark.parametrize("layout", ["plain", "lightning"])
def test_file_loads_strictly_into_the_dynunet(tmp_path, layout):
    reference, model = _reference(), _model()
    path = _write(tmp_path, layout, reference.state_dict())
    report = load_vesselfm_weights(model.unet, path)
    assert report.complete and len(report.loaded) == len(reference.state_dict())
    assert layout in report.title
    _assert_loaded(model.unet, reference)


@pytest.mark.parametrize("layout", ["plain", "lightning"])
def test_model_weights_loads_through_the_checkpointer(tmp_path, layout):
    reference, model = _reference(), _model()
    path = _write(tmp_path, layout, reference.state_dict())
    AtomicDetectionCheckpointer(model).load(path, checkpointables=[])
    _assert_loaded(model.unet, reference)


@pytest.mark.parametrize("via", ["loader", "MODEL.WEIGHTS"])
def test_deep_supervision_heads_keep_their_initialisation(tmp_path, via):
    reference = _reference()
    model = _model("MODEL.SEGMENTOR.DYNUNET.DEEP_SUPERVISION", True)
    heads = {k: v.clone() for k, v in model.unet.state_dict().items()
             if k.startswith("deep_supervision_heads.") or ".super_head." in k}
    assert heads
    path = _write(tmp_path, "plain", reference.state_dict())
    if via == "loader":
        assert sorted(load_vesselfm_weights(model.unet, path).missing) == sorted(heads)
    else:
        AtomicDetectionCheckpointer(model).load(path, checkpointables=[])
    _assert_loaded(model.unet, reference)
    for key, value in heads.items():
        assert torch.equal(model.unet.state_dict()[key], value)


def test_eval_only_loads_vesselfm_weights_for_zero_shot(tmp_path):
    reference, model = _reference(), _model()
    cfg = _cfg()
    cfg.MODEL.WEIGHTS = _write(tmp_path, "plain", reference.state_dict())
    cfg.OUTPUT_DIR = str(tmp_path)
    assert load_evaluation_weights(model, cfg, resume=False) == cfg.MODEL.WEIGHTS
    _assert_loaded(model.unet, reference)


def test_vertspine_checkpoints_load_as_before(tmp_path):
    trained, model = _model(), _model()
    with torch.no_grad():
        trained.unet.output_block.conv.conv.bias.fill_(0.75)
    AtomicDetectionCheckpointer(trained, str(tmp_path)).save("model_final")
    AtomicDetectionCheckpointer(model).load(str(tmp_path / "model_final.pth"), checkpointables=[])
    assert float(model.unet.output_block.conv.conv.bias.detach()) == 0.75


def test_missing_file_is_an_error_and_nothing_is_downloaded(tmp_path):
    path = str(tmp_path / "vesselFM_base.pt")
    with pytest.raises(FileNotFoundError, match="not downloaded automatically") as error:
        load_vesselfm_weights(_model().unet, path)
    assert path in str(error.value) and not os.path.exists(path)


def test_truncated_file_is_an_error_naming_it(tmp_path):
    path = _write(tmp_path, "plain", _reference().state_dict())
    with open(path, "rb") as f:
        head = f.read(2000)
    with open(path, "wb") as f:
        f.write(head)
    with pytest.raises(CheckpointReadError, match="cut short") as error:
        load_vesselfm_weights(_model().unet, path)
    assert path in str(error.value)


OTHER_ARCHITECTURES = {
    "dynunet_other_filters": lambda: _reference((4, 8, 16)).state_dict(),
    "resnet_like": lambda: {"conv1.weight": torch.zeros(8, 1, 3, 3, 3),
                            "fc.weight": torch.zeros(2, 8)},
}


@pytest.mark.parametrize("via", ["loader", "MODEL.WEIGHTS"])
@pytest.mark.parametrize("kind", sorted(OTHER_ARCHITECTURES))
def test_other_architecture_is_an_error_and_loads_nothing(tmp_path, kind, via):
    model = _model()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    path = _write(tmp_path, "plain", OTHER_ARCHITECTURES[kind]())
    with pytest.raises(ValueError, match="does not fit the network") as error:
        if via == "loader":
            load_vesselfm_weights(model.unet, path)
        else:
            AtomicDetectionCheckpointer(model).load(path, checkpointables=[])
    message = str(error.value)
    assert path in message and "MODEL.SEGMENTOR.DYNUNET" in message
    assert ("shape differs" if kind.startswith("dynunet") else "Unexpected") in message
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_models_without_a_dynunet_are_not_claimed():
    assert vesselfm_checkpoint_layout(nn.Linear(2, 2), {"weight": torch.zeros(2, 2)}, "f") is None
