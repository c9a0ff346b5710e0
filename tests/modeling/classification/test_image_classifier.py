"""ImageClassifier: head shapes (one FC vs several), masked pooling, losses, a frozen backbone
that really stays unchanged (parameters and BatchNorm statistics), and config errors."""
import copy

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.classification import (
    ClassificationHead,
    ClassificationLoss,
    ImageClassifier,
    masked_global_pool,
)


def _cfg(**node):
    cfg = get_vertspine_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "ImageClassifier"
    cfg.MODEL.BACKBONE.NAME = "build_timm_backbone"
    cfg.MODEL.TIMM.NAME = "test_resnet"
    cfg.MODEL.PIXEL_MEAN = [128.0, 128.0, 128.0]
    cfg.MODEL.PIXEL_STD = [64.0, 64.0, 64.0]
    cfg.MODEL.IMAGE_CLASSIFIER.IN_FEATURE = "final"
    for key, value in node.items():
        cfg.MODEL.IMAGE_CLASSIFIER[key] = value
    return cfg


def _batch(n=4, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randint(0, 256, (3, size, size + 8 * i), generator=g).float(),
             "label": i % 2} for i in range(n)]


@pytest.mark.parametrize("hidden, linear_shapes", [
    ([], [(1, 96)]),                              # "1-fcn"
    ([32, 16], [(32, 96), (16, 32), (1, 16)]),    # "fcns"
])
def test_one_fc_and_several_fc_heads(hidden, linear_shapes):
    model = build_model(_cfg(HIDDEN_DIMS=hidden, DROPOUT=0.2))
    linears = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == linear_shapes
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.head.modules()) == len(linear_shapes)
    model.eval()
    with torch.no_grad():
        outputs = model(_batch())
    assert len(outputs) == 4
    for out in outputs:
        assert out["logits"].shape == (1,) and torch.allclose(out["probs"], out["logits"].sigmoid())


def test_softmax_classifier_outputs_probabilities_summing_to_one():
    model = build_model(_cfg(NUM_CLASSES=3)).eval()
    with torch.no_grad():
        outputs = model(_batch())
    probs = torch.stack([o["probs"] for o in outputs])
    assert probs.shape == (4, 3) and torch.allclose(probs.sum(1), torch.ones(4))
    assert torch.allclose(probs, torch.stack([o["logits"] for o in outputs]).softmax(1))


def test_masked_pooling_ignores_padding():
    features = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    sizes = [(32, 40), (17, 9)]  # stride 8: 4 x 5 cells and ceil(17/8)=3 x ceil(9/8)=2 cells
    avg = masked_global_pool(features, sizes, 8, "avg")
    mx = masked_global_pool(features, sizes, 8, "max")
    assert torch.allclose(avg[0], features[0].mean((1, 2)))
    assert torch.allclose(avg[1], features[1, :, :3, :2].mean((1, 2)))
    assert torch.allclose(mx[1], features[1, :, :3, :2].amax((1, 2)))
    with pytest.raises(ValueError, match="POOL"):
        masked_global_pool(features, sizes, 8, "median")


def test_batched_inference_matches_single_image_inference_for_the_unpadded_image():
    model = build_model(_cfg()).eval()
    batch = _batch(n=3)  # widths 48, 56, 64: the last one is not padded
    with torch.no_grad():
        together = torch.stack([o["logits"] for o in model(batch)])
        alone = torch.stack([model([x])[0]["logits"] for x in batch])
    assert torch.allclose(together[2], alone[2], atol=1e-5)


def test_losses_equal_torch_references():
    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    labels = torch.tensor([1, 0, 1])
    assert ClassificationLoss(1)(logits, labels) == pytest.approx(
        F.binary_cross_entropy_with_logits(logits[:, 0], labels.float()).item())
    weighted = ClassificationLoss(1, pos_weight=3.0)(logits, labels)
    by_hand = -(3 * torch.log(torch.sigmoid(torch.tensor([0.3, 2.0])))).sum() \
        - torch.log(1 - torch.sigmoid(torch.tensor(-1.2)))
    assert weighted.item() == pytest.approx(by_hand.item() / 3, rel=1e-5)
    many = torch.randn(3, 4)
    assert ClassificationLoss(4, class_weights=[1, 2, 3, 4])(many, torch.tensor([0, 3, 2])) == \
        pytest.approx(F.cross_entropy(many, torch.tensor([0, 3, 2]),
                                      weight=torch.tensor([1.0, 2, 3, 4])).item())
    with pytest.raises(ValueError, match="outside 0..1"):
        ClassificationLoss(1)(logits, torch.tensor([1, 2, 0]))
    with pytest.raises(ValueError, match="POS_WEIGHT"):
        ClassificationLoss(3, pos_weight=2.0)


def _train_steps(model, steps=3):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    for i in range(steps):
        loss = model(_batch(seed=i))["loss_cls"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_frozen_backbone_keeps_parameters_and_batchnorm_statistics():
    model = build_model(_cfg(FREEZE_BACKBONE=True))
    backbone_before = copy.deepcopy(model.backbone.state_dict())
    head_before = copy.deepcopy(model.head.state_dict())
    _train_steps(model)
    assert model.training and not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    for key, value in model.backbone.state_dict().items():  # includes running_mean/var
        assert torch.equal(value, backbone_before[key]), key
    assert any(not torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())


def test_fine_tuning_updates_backbone_and_batchnorm_statistics():
    model = build_model(_cfg())
    before = copy.deepcopy(model.backbone.state_dict())
    _train_steps(model, steps=1)
    changed = {k for k, v in model.backbone.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.endswith("running_mean") for k in changed)
    assert any("conv" in k and k.endswith(".weight") for k in changed)


def test_bad_configuration_is_named():
    with pytest.raises(ValueError, match="IN_FEATURE 'res5'.*final"):
        build_model(_cfg(IN_FEATURE="res5"))
    with pytest.raises(ValueError, match="NUM_CLASSES is 0"):
        ClassificationHead(8, 0)
    model = build_model(_cfg()).train()
    with pytest.raises(ValueError, match="label"):
        model([{"image": torch.zeros(3, 32, 32)}])
    assert isinstance(model, ImageClassifier)
