"""The dynamic head: official parameter names and shapes, box decoding, DynamicConv layout, init."""
import math

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.sparse_rcnn import (DynamicConv, DynamicHead, RCNNHead,
                                            add_sparse_rcnn_config)

# One stage of the official r50/r101_100pro_3x checkpoints (head.head_series.{i}.*), COCO K=80.
OFFICIAL_STAGE_SHAPES = {
    "self_attn.in_proj_weight": [768, 256], "self_attn.in_proj_bias": [768],
    "self_attn.out_proj.weight": [256, 256], "self_attn.out_proj.bias": [256],
    "inst_interact.dynamic_layer.weight": [32768, 256],
    "inst_interact.dynamic_layer.bias": [32768],
    "inst_interact.norm1.weight": [64], "inst_interact.norm1.bias": [64],
    "inst_interact.norm2.weight": [256], "inst_interact.norm2.bias": [256],
    "inst_interact.norm3.weight": [256], "inst_interact.norm3.bias": [256],
    "inst_interact.out_layer.weight": [256, 12544], "inst_interact.out_layer.bias": [256],
    "linear1.weight": [2048, 256], "linear1.bias": [2048],
    "linear2.weight": [256, 2048], "linear2.bias": [256],
    "norm1.weight": [256], "norm1.bias": [256], "norm2.weight": [256], "norm2.bias": [256],
    "norm3.weight": [256], "norm3.bias": [256],
    "cls_module.0.weight": [256, 256], "cls_module.1.weight": [256], "cls_module.1.bias": [256],
    "reg_module.0.weight": [256, 256], "reg_module.1.weight": [256], "reg_module.1.bias": [256],
    "reg_module.3.weight": [256, 256], "reg_module.4.weight": [256], "reg_module.4.bias": [256],
    "reg_module.6.weight": [256, 256], "reg_module.7.weight": [256], "reg_module.7.bias": [256],
    "class_logits.weight": [80, 256], "class_logits.bias": [80],
    "bboxes_delta.weight": [4, 256], "bboxes_delta.bias": [4],
}


def tiny_stage(**kwargs):
    args = dict(num_classes=3, hidden_dim=8, dim_feedforward=16, nheads=2, dim_dynamic=4,
                pooler_resolution=2)
    args.update(kwargs)
    return RCNNHead(**args)


def tiny_pooler():
    return ROIPooler(output_size=2, scales=(1 / 4,), sampling_ratio=2, pooler_type="ROIAlignV2")


def test_default_stage_has_the_official_keys_and_shapes():
    torch.manual_seed(0)
    stage = RCNNHead(num_classes=80)
    shapes = {key: list(value.shape) for key, value in stage.state_dict().items()}
    assert shapes == OFFICIAL_STAGE_SHAPES


def test_init_is_xavier_with_the_focal_prior_on_the_class_bias_only():
    torch.manual_seed(0)
    stage = tiny_stage(num_classes=4, prior_prob=0.01)  # K = 4 = size of bboxes_delta.bias
    torch.testing.assert_close(stage.class_logits.bias, torch.full((4,), -math.log(99.0)))
    assert not torch.allclose(stage.bboxes_delta.bias, stage.class_logits.bias)
    bound = math.sqrt(6.0 / (8 + 16))  # xavier_uniform of linear1 [16, 8]
    assert stage.linear1.weight.abs().max() <= bound
    assert stage.linear1.weight.abs().max() > 0.8 * bound


def test_box_decoding_equals_hand_computation():
    """Box (10, 20, 50, 100): width 40, height 80, centre (30, 60); weights (2, 2, 1, 1)."""
    torch.manual_seed(0)
    stage = tiny_stage()
    deltas = torch.tensor([[2.0, -4.0, math.log(2.0), 0.0],  # centre (70, -100), size 80 x 80
                           [0.0, 0.0, 20.0, -1.0]])  # dw clamped at log(1e5 / 16)
    boxes = torch.tensor([[10.0, 20.0, 50.0, 100.0], [10.0, 20.0, 50.0, 100.0]])
    width = 40.0 * 1e5 / 16
    height = 80.0 * math.exp(-1.0)
    expected = torch.tensor([[30.0, -140.0, 110.0, -60.0],
                             [30 - width / 2, 60 - height / 2, 30 + width / 2, 60 + height / 2]])
    with torch.no_grad():  # make the stage predict exactly these deltas
        stage.bboxes_delta.weight.zero_()
        stage.bboxes_delta.bias.zero_()
    for i in range(2):
        with torch.no_grad():
            stage.bboxes_delta.bias.copy_(deltas[i])
        _, refined, _ = stage([torch.randn(1, 8, 32, 32)], boxes[None, i:i + 1],
                              torch.randn(1, 1, 8), tiny_pooler())
        torch.testing.assert_close(refined[0, 0], expected[i])


def test_dynamic_conv_layout():
    """First C*D generated parameters form the C x D map (row-major), the next D*C the D x C map."""
    torch.manual_seed(0)
    conv = DynamicConv(hidden_dim=3, dim_dynamic=2, pooler_resolution=1)
    pro, roi = torch.randn(2, 3), torch.randn(2, 1, 3)
    params = conv.dynamic_layer(pro)
    for p in range(2):
        first = [[params[p, c * 2 + d] for d in range(2)] for c in range(3)]
        second = [[params[p, 6 + d * 3 + c] for c in range(3)] for d in range(2)]
        hidden = [sum(roi[p, 0, c] * first[c][d] for c in range(3)) for d in range(2)]
        hidden = torch.relu(conv.norm1(torch.stack(hidden)))
        out = torch.relu(conv.norm2(torch.stack(
            [sum(hidden[d] * second[d][c] for d in range(2)) for c in range(3)])))
        expected = torch.relu(conv.norm3(conv.out_layer(out)))
        torch.testing.assert_close(conv(pro, roi)[p], expected)


def test_boxes_are_detached_between_stages():
    torch.manual_seed(0)
    head = DynamicHead(in_features=["p2"], pooler=tiny_pooler(),
                       stages=[tiny_stage(), tiny_stage()])
    boxes = torch.tensor([[[4.0, 4.0, 60.0, 40.0], [0.0, 0.0, 128.0, 128.0]]], requires_grad=True)
    logits, refined = head({"p2": torch.randn(1, 8, 32, 32)}, boxes, torch.randn(2, 8))
    assert logits.shape == (2, 1, 2, 3) and refined.shape == (2, 1, 2, 4)
    (grad_last,) = torch.autograd.grad(refined[1].sum(), boxes, allow_unused=True,
                                       retain_graph=True)
    (grad_first,) = torch.autograd.grad(refined[0].sum(), boxes)
    assert grad_last is None or not grad_last.any()  # RoIAlign passes zeros to its boxes
    assert grad_first.abs().sum() > 0


@pytest.mark.parametrize("key, value, message", [
    ("HIDDEN_DIM", 32, "HIDDEN_DIM is 32"),
    ("IN_FEATURES", ["p2", "p7"], "does not output"),
    ("NUM_DYNAMIC", 3, "NUM_DYNAMIC is 3"),
    ("ACTIVATION", "glu", "ACTIVATION is 'glu'"),
    ("NUM_HEADS", 0, "NUM_HEADS must be at least 1"),
])
def test_bad_config_raises_naming_the_key(key, value, message):
    cfg = add_sparse_rcnn_config(get_vertspine_cfg())
    cfg.MODEL.SPARSE_RCNN.HIDDEN_DIM = 16
    cfg.MODEL.SPARSE_RCNN.DIM_FEEDFORWARD = 16
    cfg.MODEL.SPARSE_RCNN[key] = value
    shapes = {name: ShapeSpec(channels=16, stride=2 ** (i + 2))
              for i, name in enumerate(["p2", "p3", "p4", "p5"])}
    with pytest.raises(ValueError, match=message):
        DynamicHead(cfg, shapes)
