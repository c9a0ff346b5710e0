"""vertspine's Sparse R-CNN head and criterion against the official ones, same weights and input.

``data/official_head_reference.pt`` holds the official ``DynamicHead``'s state dict, fixed FPN
features, initial boxes and proposal features, the official per-stage class logits and boxes,
fixed ground truth and the official detector's weighted training losses on those outputs (made
by ``data/make_official_reference.py`` from the official head.py and loss.py, which are not
part of vertspine). The official keys load strictly into vertspine's head, and head and
criterion must give the same numbers.
"""
import os

import pytest
import torch
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes, Instances

from vertspine.modeling.sparse_rcnn import DynamicHead, HungarianMatcher, RCNNHead, SetCriterion

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "official_head_reference.pt")


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE, map_location="cpu", weights_only=False)


def _head(config):
    pooler = ROIPooler(output_size=config["POOLER_RESOLUTION"],
                       scales=tuple(1.0 / s for s in config["STRIDES"]),
                       sampling_ratio=config["POOLER_SAMPLING_RATIO"],
                       pooler_type=config["POOLER_TYPE"])
    stages = [RCNNHead(num_classes=config["NUM_CLASSES"], hidden_dim=config["HIDDEN_DIM"],
                       dim_feedforward=config["DIM_FEEDFORWARD"], nheads=config["NHEADS"],
                       dropout=config["DROPOUT"], activation=config["ACTIVATION"],
                       num_cls=config["NUM_CLS"], num_reg=config["NUM_REG"],
                       dim_dynamic=config["DIM_DYNAMIC"], num_dynamic=config["NUM_DYNAMIC"],
                       pooler_resolution=config["POOLER_RESOLUTION"],
                       use_focal=config["USE_FOCAL"], prior_prob=config["PRIOR_PROB"])
              for _ in range(config["NUM_HEADS"])]
    return DynamicHead(in_features=config["IN_FEATURES"], pooler=pooler, stages=stages)


def test_official_state_dict_loads_key_for_key(reference):
    head = _head(reference["config"])
    assert set(head.state_dict()) == set(reference["state_dict"])
    head.load_state_dict(reference["state_dict"], strict=True)


def test_outputs_equal_the_official_head(reference):
    head = _head(reference["config"]).eval()
    head.load_state_dict(reference["state_dict"], strict=True)
    with torch.no_grad():
        logits, boxes = head(reference["features"], reference["boxes"], reference["pro_features"])
    assert logits.shape == reference["class_logits"].shape == (2, 2, 5, 3)
    assert boxes.shape == reference["pred_boxes"].shape == (2, 2, 5, 4)
    torch.testing.assert_close(logits, reference["class_logits"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(boxes, reference["pred_boxes"], rtol=1e-5, atol=1e-4)
    # the reference is not degenerate: stages differ and boxes moved from the initial ones
    assert not torch.allclose(reference["class_logits"][0], reference["class_logits"][1])
    assert (reference["pred_boxes"][1] - reference["boxes"]).abs().max() > 0.5


def test_losses_equal_the_official_criterion(reference):
    config = reference["config"]
    targets = []
    for boxes, classes in zip(reference["gt_boxes"], reference["gt_classes"]):
        target = Instances(tuple(reference["image_hw"]))
        target.gt_boxes = Boxes(torch.tensor(boxes))
        target.gt_classes = torch.tensor(classes)
        targets.append(target)
    matcher = HungarianMatcher(cost_class=config["CLASS_WEIGHT"], cost_bbox=config["L1_WEIGHT"],
                               cost_giou=config["GIOU_WEIGHT"], focal_alpha=config["ALPHA"],
                               focal_gamma=config["GAMMA"])
    criterion = SetCriterion(matcher=matcher, num_classes=config["NUM_CLASSES"],
                             class_weight=config["CLASS_WEIGHT"], l1_weight=config["L1_WEIGHT"],
                             giou_weight=config["GIOU_WEIGHT"], focal_alpha=config["ALPHA"],
                             focal_gamma=config["GAMMA"])
    losses = criterion(reference["class_logits"], reference["pred_boxes"], targets)
    assert set(losses) == set(reference["losses"])
    for name, value in reference["losses"].items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-5), name
