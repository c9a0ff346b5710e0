"""Segmentor end to end per spatial_dims (detectron2 test_model_e2e style): built from the instant
configs on CPU, one training step, one inference, empty ground truth, no NaN."""
import os

import pytest
import torch
from detectron2.modeling import build_model

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg

CONFIGS = os.path.join(REPO_ROOT, "configs", "segmentation")
CASES = {  # name: (config, overrides)
    "smp_unet_2d": ("smp_unet_R_18_2d_instant_test.yaml", []),
    "dynunet_2d": ("smp_unet_R_18_2d_instant_test.yaml", [
        "MODEL.SEGMENTOR.NETWORK", "dynunet", "MODEL.SEGMENTOR.DYNUNET.FILTERS", "[8, 16, 32]",
        "MODEL.SEGMENTOR.DYNUNET.KERNEL_SIZES", "[3, 3, 3]",
        "MODEL.SEGMENTOR.DYNUNET.STRIDES", "[1, 2, 2]"]),
    "dynunet_3d": ("dynunet_3d_instant_test.yaml", []),
    "dynunet_sigmoid_3d": ("dynunet_sigmoid_3d_instant_test.yaml", []),
    "dynunet_deep_supervision_3d": ("dynunet_3d_instant_test.yaml", [
        "MODEL.SEGMENTOR.DYNUNET.DEEP_SUPERVISION", "True"]),
}


def _model(case):
    name, overrides = CASES[case]
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    cfg.merge_from_list(overrides)
    torch.manual_seed(0)
    return build_model(cfg)


def _inputs(spatial_dims, empty=False):
    """Two training samples (an image of each size, or two 16^3 patches) and test inputs."""
    generator = torch.Generator().manual_seed(1)
    if spatial_dims == 2:
        shapes, scale, channels = [(48, 40), (64, 64)], 255.0, 3
        tests = [{"image": torch.rand(3, 50, 44, generator=generator) * 255, "height": 100,
                  "width": 88}]
    else:
        shapes, scale, channels = [(16, 16, 16)] * 2, 1.0, 1
        tests = [{"image": torch.rand(1, 21, 16, 27, generator=generator)}]  # several windows
    train = []
    for shape in shapes:
        labels = (torch.rand(shape, generator=generator) < 0.2).long()
        train.append({"image": torch.rand(channels, *shape, generator=generator) * scale,
                      "sem_seg": torch.zeros_like(labels) if empty else labels})
    return train, tests


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("empty", [False, True], ids=["labels", "empty_gt"])
def test_train_step_and_inference(case, empty):
    model = _model(case)
    dims = model.spatial_dims
    train, tests = _inputs(dims, empty)
    model.train()
    losses = model(train)
    assert set(losses) == {"loss_ce", "loss_dice"}
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0

    model.eval()
    with torch.no_grad():
        outputs = model(tests)
    sem_seg = outputs[0]["sem_seg"]
    expected = [100, 88] if dims == 2 else list(tests[0]["image"].shape[1:])
    assert list(sem_seg.shape) == [2, *expected]  # K + 1 = 2 probabilities at the input frame
    assert torch.isfinite(sem_seg).all() and sem_seg.min() >= 0
    torch.testing.assert_close(sem_seg.sum(0), torch.ones(expected))
