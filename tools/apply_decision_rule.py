#!/usr/bin/env python
"""Gate a detector's boxes by an image classifier (VinDr-SpineXR's overall decision rule).

Choose (T, K) on the validation split, then apply them to the test split (DET and CLS are the
detector's and the classifier's OUTPUT_DIR/inference folders):

    python tools/apply_decision_rule.py --choose-on-val --dataset vindr_spinexr_val \
        --detections DET/vindr_spinexr_val/coco_instances_results.json \
        --classifier-predictions CLS/vindr_spinexr_cls_val/classification_predictions.json \
        --output out/rule_val
    python tools/apply_decision_rule.py --thresholds out/rule_val/decision_rule_thresholds.json \
        --dataset vindr_spinexr_test \
        --detections DET/vindr_spinexr_test/coco_instances_results.json \
        --classifier-predictions CLS/vindr_spinexr_cls_test/classification_predictions.json \
        --output out/rule_test

or give ``--abnormal-threshold T --keep-threshold K`` directly. Where p(abnormal) < T only boxes
with score >= K are kept (:mod:`vertspine.evaluation.decision_rule`). Prints and writes COCO
box AP/AP50 without and with the rule (OUTPUT/decision_rule_results.json) and the gated
detections (OUTPUT/coco_instances_results_gated.json); ``--choose-on-val`` writes
OUTPUT/decision_rule_thresholds.json. ``--dataset`` is a registered COCO-json dataset (its
``json_file`` is the ground truth); ``--gt-json`` gives the json directly.
"""
import argparse
import json
import os
import sys

import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registers datasets)
from detectron2.data import MetadataCatalog
from vertspine.data import dataset_split
from vertspine.utils.file_io import write_json
from vertspine.evaluation.classification import read_predictions
from vertspine.evaluation.decision_rule import (
    DEFAULT_ABNORMAL_GRID,
    DEFAULT_KEEP_GRID,
    abnormal_probabilities,
    apply_decision_rule,
    choose_thresholds,
    coco_box_ap,
    load_coco_gt,
)


def _ground_truth(args, parser):
    if args.gt_json:
        return args.gt_json
    if not args.dataset:
        parser.error("give --dataset NAME (a registered COCO-json dataset) or --gt-json PATH.")
    json_file = MetadataCatalog.get(args.dataset).get("json_file", None)
    if not json_file:
        parser.error(f"dataset '{args.dataset}' has no json_file metadata; pass --gt-json.")
    return json_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detections", required=True, help="coco_instances_results.json")
    parser.add_argument("--classifier-predictions", required=True,
                        help="classification_predictions.json of the same images")
    parser.add_argument("--dataset", default="", help="registered detection dataset (ground truth)")
    parser.add_argument("--gt-json", default="", help="COCO ground-truth json instead of --dataset")
    parser.add_argument("--abnormal-threshold", type=float, default=None, help="T")
    parser.add_argument("--keep-threshold", type=float, default=None, help="K")
    parser.add_argument("--thresholds", default="", help="decision_rule_thresholds.json (T, K)")
    parser.add_argument("--choose-on-val", action="store_true",
                        help="grid-search T, K maximising AP50 (validation split only)")
    parser.add_argument("--abnormal-grid", type=float, nargs="+", default=DEFAULT_ABNORMAL_GRID)
    parser.add_argument("--keep-grid", type=float, nargs="+", default=DEFAULT_KEEP_GRID)
    parser.add_argument("--output", required=True, help="output folder")
    args = parser.parse_args(argv)

    gt_json = _ground_truth(args, parser)
    gt = load_coco_gt(gt_json)
    with open(args.detections) as f:
        detections = json.load(f)
    classifier = read_predictions(args.classifier_predictions)
    p_abnormal = abnormal_probabilities(classifier["predictions"])
    os.makedirs(args.output, exist_ok=True)
    if args.choose_on_val:
        if args.dataset and dataset_split(args.dataset) == "test":
            parser.error(f"'{args.dataset}' is a test split: choose the thresholds on the "
                         "validation split, then apply them here with --thresholds.")
        chosen = choose_thresholds(gt, detections, p_abnormal, args.abnormal_grid, args.keep_grid)
        chosen.update(dataset=args.dataset or gt_json, criterion="max AP50 on this (val) split")
        write_json(os.path.join(args.output, "decision_rule_thresholds.json"), chosen)
        t, k = chosen["abnormal_threshold"], chosen["keep_threshold"]
        source = "chosen on this split (validation)"
    elif args.thresholds:
        with open(args.thresholds) as f:
            saved = json.load(f)
        t, k = saved["abnormal_threshold"], saved["keep_threshold"]
        source = f"{args.thresholds} (chosen on {saved.get('dataset')})"
    elif args.abnormal_threshold is not None and args.keep_threshold is not None:
        t, k, source = args.abnormal_threshold, args.keep_threshold, "command line"
    else:
        parser.error("give --choose-on-val, --thresholds FILE, or both --abnormal-threshold and "
                     "--keep-threshold.")
    gated = apply_decision_rule(detections, p_abnormal, t, k)
    results = {"dataset": args.dataset or gt_json, "abnormal_threshold": t, "keep_threshold": k,
               "threshold_source": source, "without_rule": coco_box_ap(gt, detections),
               "with_rule": coco_box_ap(gt, gated), "num_detections": len(detections),
               "num_detections_kept": len(gated)}
    write_json(os.path.join(args.output, "coco_instances_results_gated.json"), gated)
    write_json(os.path.join(args.output, "decision_rule_results.json"), results)
    print(f"T={t} K={k} ({source}); kept {len(gated)}/{len(detections)} boxes")
    for label in ("without_rule", "with_rule"):
        print(f"{label}: AP {results[label]['AP']:.2f}  AP50 {results[label]['AP50']:.2f}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
