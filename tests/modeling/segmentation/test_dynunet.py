"""dynunet: the network equals MONAI's DynUNet built directly; size divisibility from the
strides; bad arguments raise naming the key; deep supervision weighted as MONAI's
DeepSupervisionLoss; sliding-window inference equals MONAI's on the same volume."""
import pytest
import torch
from detectron2.modeling import build_model
from monai.inferers import sliding_window_inference
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.networks.nets import DynUNet

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.segmentation import build_segmentation_network


def _cfg(spatial_dims=3, **dynunet):
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE = "Segmentor"
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = [0.5], [2.0]
    node = cfg.MODEL.SEGMENTOR
    node.SPATIAL_DIMS, node.NETWORK, node.IN_CHANNELS = spatial_dims, "dynunet", 1
    node.NUM_CLASSES = 2
    node.DYNUNET.FILTERS, node.DYNUNET.KERNEL_SIZES = [4, 8, 8], [3, 3, 3]
    node.DYNUNET.STRIDES = [1, 2, 2]
    node.SLIDING_WINDOW.ROI_SIZE = [8, 8, 8]
    cfg.INPUT.FORMAT = "L"
    for key, value in dynunet.items():
        node.DYNUNET[key] = value
    return cfg


def test_vesselfm_network_equals_monai():
    cfg = _cfg(FILTERS=[32, 64, 128, 256, 320, 320], KERNEL_SIZES=[3] * 6,
               STRIDES=[1, 2, 2, 2, 2, 2])
    cfg.MODEL.SEGMENTOR.ACTIVATION, cfg.MODEL.SEGMENTOR.NUM_CLASSES = "sigmoid", 1
    torch.manual_seed(0)
    ours = build_segmentation_network(cfg)
    torch.manual_seed(0)
    reference = DynUNet(3, 1, 1, kernel_size=[3] * 6, strides=[1, 2, 2, 2, 2, 2],
                        upsample_kernel_size=[2] * 5, filters=[32, 64, 128, 256, 320, 320],
                        res_block=True)
    assert ours.size_divisibility == (32, 32, 32)  # 128^3 patch -> 4^3 bottleneck
    expected = reference.state_dict()
    state = ours.module.state_dict()
    assert list(state) == list(expected)  # same modules in the same order: same weights below
    for key, value in state.items():
        torch.testing.assert_close(value, expected[key], msg=key)


def test_small_network_computes_as_monai():
    torch.manual_seed(0)
    ours = build_segmentation_network(_cfg(spatial_dims=2, STRIDES=[1, [2, 1], 2]))
    torch.manual_seed(0)
    reference = DynUNet(2, 1, 3, kernel_size=[3] * 3, strides=[1, [2, 1], 2],
                        upsample_kernel_size=[[2, 1], 2], filters=[4, 8, 8], res_block=True)
    assert ours.size_divisibility == (4, 2)
    x = torch.randn(2, 1, 16, 8)
    torch.testing.assert_close(ours.module(x), reference(x))


@pytest.mark.parametrize("strides, expected", [
    ([1, 2, 2], (4, 4, 4)),
    ([[1, 1, 1], [2, 2, 1], [2, 2, 2]], (4, 4, 2)),
    ([1, 2, 3], (6, 6, 6)),
])
def test_size_divisibility_is_the_product_of_strides(strides, expected):
    network = build_segmentation_network(_cfg(STRIDES=strides, RES_BLOCK=False))
    assert network.size_divisibility == expected


@pytest.mark.parametrize("settings, message", [
    ({"FILTERS": [4, 8]}, "FILTERS, KERNEL_SIZES and STRIDES need one entry per level"),
    ({"STRIDES": [1, 2, [2, 2]]}, r"DYNUNET.STRIDES\[2\] is \[2, 2\]"),
    ({"KERNEL_SIZES": [3, 0, 3]}, r"DYNUNET.KERNEL_SIZES\[1\] is 0"),
    ({"FILTERS": [4, -8, 8]}, "DYNUNET.FILTERS must be positive"),
    ({"DEEP_SUPERVISION": True, "DEEP_SUPR_NUM": 2}, r"DEEP_SUPR_NUM must be in 1..1"),
    ({"STRIDES": [1, 2, 3]}, r"STRIDES\[2\] \[3, 3, 3\] is too large.*RES_BLOCK"),
    ({"STRIDES": [1, 5, 2], "RES_BLOCK": False}, r"STRIDES\[1\] \[5, 5, 5\] is too large"),
])
def test_bad_arguments_name_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        build_segmentation_network(_cfg(**settings))


@pytest.mark.parametrize("key, value, message", [
    ("SLIDING_WINDOW.ROI_SIZE", [8, 8, 6], r"ROI_SIZE \[8, 8, 6\].*\(4, 4, 4\)"),
    ("SLIDING_WINDOW.MODE", "linear", "SLIDING_WINDOW.MODE 'linear'"),
    ("SLIDING_WINDOW.OVERLAP", 1.0, "OVERLAP must be in"),
    ("FREEZE_ENCODER", True, "FREEZE_ENCODER needs a network with an `encoder`"),
    ("NETWORK", "unet3d", "NETWORK 'unet3d' is not registered"),
    ("SPATIAL_DIMS", 4, "SPATIAL_DIMS must be 2 or 3"),
    ("ACTIVATION", "sigmoid", "'sigmoid' is binary"),
])
def test_segmentor_settings_are_checked(key, value, message):
    cfg = _cfg()
    node = cfg.MODEL.SEGMENTOR
    for part in key.split(".")[:-1]:
        node = node[part]
    node[key.split(".")[-1]] = value
    with pytest.raises(ValueError, match=message):
        build_model(cfg)


def test_deep_supervision_loss_equals_monai():
    cfg = _cfg(FILTERS=[4, 8, 8, 8], KERNEL_SIZES=[3] * 4, STRIDES=[1, 2, 2, 2],
               DEEP_SUPERVISION=True, DEEP_SUPR_NUM=2)
    cfg.MODEL.SEGMENTOR.SLIDING_WINDOW.ROI_SIZE = [16, 16, 8]
    model = build_model(cfg).train()
    torch.manual_seed(3)
    images = torch.randn(2, 1, 16, 16, 8)
    targets = torch.randint(0, 3, (2, 16, 16, 8))
    logits = model.unet(images)
    assert list(logits.shape) == [2, 3, 3, 16, 16, 8]  # [N, heads, K + 1, *spatial]
    losses = model.losses(logits, targets)
    reference = DeepSupervisionLoss(DiceCELoss(softmax=True, to_onehot_y=True), weight_mode="exp")
    expected = reference(list(logits.unbind(1)), targets[:, None])
    torch.testing.assert_close(losses["loss_ce"] + losses["loss_dice"], expected)
    inputs = [{"image": image, "sem_seg": target} for image, target in zip(images, targets)]
    assert set(model(inputs)) == {"loss_ce", "loss_dice"}
    with torch.no_grad():
        output = model.eval()(inputs[:1])[0]["sem_seg"]
    assert list(output.shape) == [3, 16, 16, 8]  # the full-resolution head only


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_sliding_window_inference_equals_monai(mode):
    cfg = _cfg()
    cfg.MODEL.SEGMENTOR.SLIDING_WINDOW.MODE = mode
    cfg.MODEL.SEGMENTOR.SLIDING_WINDOW.OVERLAP = 0.5
    model = build_model(cfg).eval()
    torch.manual_seed(4)
    volume = torch.rand(1, 13, 20, 9) * 100  # not a multiple of the window: padded, cropped back
    with torch.no_grad():
        output = model([{"image": volume}])[0]["sem_seg"]
        logits = sliding_window_inference((volume[None] - 0.5) / 2.0, (8, 8, 8), 4, model.unet,
                                          overlap=0.5, mode=mode)[0]
        single = model([{"image": volume[:, :8, :8, :8]}])[0]["sem_seg"]  # one window: no blending
        direct = model.unet((volume[None, :, :8, :8, :8] - 0.5) / 2.0)[0]
    assert list(output.shape) == [3, 13, 20, 9]
    torch.testing.assert_close(output, logits.softmax(0))
    torch.testing.assert_close(single, direct.softmax(0))
