#!/usr/bin/env python
"""Write official_head_reference.pt: the official Sparse R-CNN head's outputs and losses.

    python tests/modeling/sparse_rcnn/data/make_official_reference.py \
        --official-root /path/to/SparseR-CNN/projects/SparseRCNN

The official ``DynamicHead``, ``SetCriterion`` and ``HungarianMatcher`` (PeizeSun/SparseR-CNN,
``sparsercnn/head.py`` and ``sparsercnn/loss.py`` under ``--official-root``; not part of
vertspine) are imported with a small configuration
(2 stages, hidden 16, FFN 32, 4 heads, dynamic 4, 7x7 RoIAlignV2 on p2-p5, focal, 3 classes).
Its parameters are drawn from a fixed seed (the official initialisation, then Gaussian noise so
that no bias is zero), and it is run in eval mode on fixed FPN features [2, 16, H, W], initial
boxes [2, 5, 4] (XYXY pixels of a 64 x 96 image) and initial proposal features [5, 16]. The
criterion, built as the official detector builds it (focal, deep supervision, weights class 2,
L1 5, GIoU 2 for matching and losses, losses multiplied by their weights), scores those outputs
against fixed ground truth (2 boxes in image 0, 1 in image 1). The file stores the
configuration, the official state dict (``head_series.{i}.*``), the inputs, the per-stage class
logits [2, 2, 5, 3] and boxes [2, 2, 5, 4], the ground truth and the weighted losses;
test_sparse_rcnn_official_parity.py loads the state dict into vertspine's head and compares.
"""
import argparse
import importlib
import os
import sys

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
import torch
from detectron2.config import CfgNode as CN
from detectron2.layers import ShapeSpec

CONFIG = dict(NUM_CLASSES=3, HIDDEN_DIM=16, DIM_FEEDFORWARD=32, NHEADS=4, DROPOUT=0.0,
              ACTIVATION="relu", NUM_HEADS=2, DEEP_SUPERVISION=True, USE_FOCAL=True,
              PRIOR_PROB=0.01, NUM_CLS=1, NUM_REG=3, DIM_DYNAMIC=4, NUM_DYNAMIC=2,
              NUM_PROPOSALS=5, ALPHA=0.25, GAMMA=2.0, CLASS_WEIGHT=2.0, L1_WEIGHT=5.0,
              GIOU_WEIGHT=2.0)
POOLER = dict(POOLER_RESOLUTION=7, POOLER_SAMPLING_RATIO=2, POOLER_TYPE="ROIAlignV2")
IN_FEATURES = ["p2", "p3", "p4", "p5"]
STRIDES = [4, 8, 16, 32]
IMAGE_HW = (64, 96)


def official_config() -> CN:
    cfg = CN()
    cfg.MODEL = CN()
    cfg.MODEL.SparseRCNN = CN(CONFIG)
    cfg.MODEL.ROI_HEADS = CN({"IN_FEATURES": IN_FEATURES})
    cfg.MODEL.ROI_BOX_HEAD = CN(POOLER)
    return cfg


def fixed_inputs(generator: torch.Generator):
    channels, (height, width) = CONFIG["HIDDEN_DIM"], IMAGE_HW
    features = [torch.randn(2, channels, height // s, width // s, generator=generator)
                for s in STRIDES]
    corner = torch.rand(2, 5, 2, generator=generator) * torch.tensor([width * 0.6, height * 0.6])
    size = 4 + torch.rand(2, 5, 2, generator=generator) * torch.tensor([width * 0.4, height * 0.4])
    boxes = torch.cat([corner, corner + size], dim=-1)
    pro_features = torch.randn(5, channels, generator=generator)
    return features, boxes, pro_features


GT_BOXES = ([[10.0, 8.0, 40.0, 30.0], [50.0, 20.0, 90.0, 60.0]], [[5.0, 30.0, 45.0, 62.0]])
GT_CLASSES = ([1, 2], [0])


def official_targets():
    """The official detector's ``prepare_targets`` output for GT_BOXES / GT_CLASSES."""
    height, width = IMAGE_HW
    whwh = torch.tensor([width, height, width, height], dtype=torch.float)
    targets = []
    for boxes, classes in zip(GT_BOXES, GT_CLASSES):
        xyxy = torch.tensor(boxes)
        normalised = xyxy / whwh
        cxcywh = torch.cat([(normalised[:, :2] + normalised[:, 2:]) / 2,
                            normalised[:, 2:] - normalised[:, :2]], dim=1)
        targets.append({"labels": torch.tensor(classes), "boxes": cxcywh, "boxes_xyxy": xyxy,
                        "image_size_xyxy": whwh, "image_size_xyxy_tgt": whwh.repeat(len(boxes), 1)})
    return targets


def official_losses(loss_module, cfg, logits, boxes):
    """Weighted losses as the official detector computes them in training."""
    weights = {"loss_ce": CONFIG["CLASS_WEIGHT"], "loss_bbox": CONFIG["L1_WEIGHT"],
               "loss_giou": CONFIG["GIOU_WEIGHT"]}
    weights.update({f"{k}_{i}": v for i in range(CONFIG["NUM_HEADS"] - 1)
                    for k, v in list(weights.items())})
    matcher = loss_module.HungarianMatcher(cfg=cfg, cost_class=CONFIG["CLASS_WEIGHT"],
                                           cost_bbox=CONFIG["L1_WEIGHT"],
                                           cost_giou=CONFIG["GIOU_WEIGHT"], use_focal=True)
    criterion = loss_module.SetCriterion(cfg=cfg, num_classes=CONFIG["NUM_CLASSES"],
                                         matcher=matcher, weight_dict=weights, eos_coef=0.1,
                                         losses=["labels", "boxes"], use_focal=True)
    outputs = {"pred_logits": logits[-1], "pred_boxes": boxes[-1],
               "aux_outputs": [{"pred_logits": a, "pred_boxes": b}
                               for a, b in zip(logits[:-1], boxes[:-1])]}
    losses = criterion(outputs, official_targets())
    return {k: float(v * weights[k]) for k, v in losses.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official-root", required=True,
                        help="the folder holding the official sparsercnn package")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__),
                                                         "official_head_reference.pt"))
    args = parser.parse_args()
    sys.path.insert(0, args.official_root)
    official = importlib.import_module("sparsercnn.head")
    official_loss = importlib.import_module("sparsercnn.loss")

    torch.manual_seed(0)
    shapes = {name: ShapeSpec(channels=CONFIG["HIDDEN_DIM"], stride=s)
              for name, s in zip(IN_FEATURES, STRIDES)}
    cfg = official_config()
    head = official.DynamicHead(cfg, shapes).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in head.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator))
    features, boxes, pro_features = fixed_inputs(generator)
    with torch.no_grad():
        logits, refined = head(features, boxes, pro_features)
        losses = official_losses(official_loss, cfg, logits, refined)
    torch.save({
        "config": {**CONFIG, **POOLER, "IN_FEATURES": IN_FEATURES, "STRIDES": STRIDES},
        "state_dict": head.state_dict(),
        "features": dict(zip(IN_FEATURES, features)), "boxes": boxes,
        "pro_features": pro_features, "class_logits": logits, "pred_boxes": refined,
        "gt_boxes": GT_BOXES, "gt_classes": GT_CLASSES, "image_hw": IMAGE_HW, "losses": losses,
        "source": "PeizeSun/SparseR-CNN projects/SparseRCNN/sparsercnn/head.py (commit bd40124), "
                  "loss.py (commit 3caf0a6), detector.py (commit 0d29098)",
    }, args.output)
    print(f"wrote {args.output}: logits {tuple(logits.shape)}, boxes {tuple(refined.shape)}, "
          f"losses {losses}")


if __name__ == "__main__":
    main()
