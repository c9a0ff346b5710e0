#!/usr/bin/env python
"""Mean-logit ensemble of binary image classifiers, evaluated like a single classifier.

    python tools/ensemble_classifiers.py \
        --predictions out/d121/inference/vindr_spinexr_cls_test/classification_predictions.json \
                      out/d169/inference/vindr_spinexr_cls_test/classification_predictions.json \
        --val-predictions out/d121/inference/vindr_spinexr_cls_val/classification_predictions.json \
                          out/d169/inference/vindr_spinexr_cls_val/classification_predictions.json \
        --output out/ensemble_test

Each probability is clipped to [1e-6, 1 - 1e-6] and turned into a logit; the logits are
averaged and the sigmoid of the mean is the ensemble probability
(:mod:`vertspine.evaluation.classifier_ensemble`). The threshold: Youden's J on the ensembled
``--val-predictions`` (same members, same order), else ``--threshold``, else, when the predicted
dataset is itself a validation split, Youden's J on it (metrics then labelled
``_thr_chosen_on_this_set``), else 0.5. Writes OUTPUT/classification_predictions.{json,csv}
(input of tools/apply_decision_rule.py) and OUTPUT/classification_metrics.json.
"""
import argparse
import logging
import os
import sys

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
from vertspine.data import dataset_split
from vertspine.utils.file_io import write_json
from vertspine.evaluation.classification import (
    evaluate_predictions,
    read_predictions,
    write_predictions,
)
from vertspine.evaluation.classification_metrics import youden_threshold
from vertspine.evaluation.classifier_ensemble import ensemble_binary_predictions

logger = logging.getLogger("vertspine.ensemble")


def _ensemble(paths):
    files = [read_predictions(p) for p in paths]
    members = [f["predictions"] for f in files]
    return files[0], ensemble_binary_predictions(members, paths)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", nargs="+", required=True,
                        help="classification_predictions.json of each member (evaluated split)")
    parser.add_argument("--val-predictions", nargs="+", default=None,
                        help="the members' predictions on the validation split, same order")
    parser.add_argument("--threshold", type=float, default=None, help="fixed threshold")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    for path in args.predictions + (args.val_predictions or []):
        if not os.path.isfile(path):
            parser.error(f"prediction file {path!r} does not exist; give the "
                         "classification_predictions.json written by --eval-only "
                         "(OUTPUT_DIR/inference/<dataset>/).")
    first, predictions = _ensemble(args.predictions)
    dataset = first.get("dataset") or ""
    info = {"members": args.predictions, "dataset": dataset}
    choose = False
    if args.val_predictions:
        if len(args.val_predictions) != len(args.predictions):
            parser.error("--val-predictions needs one file per --predictions file.")
        _, val = _ensemble(args.val_predictions)
        threshold, info["val_youden_j"] = youden_threshold(
            [p["label"] for p in val], [p["probs"][-1] for p in val])
        info["threshold_source"] = "youden on the ensembled --val-predictions"
    elif args.threshold is not None:
        threshold, info["threshold_source"] = args.threshold, "--threshold"
    elif dataset_split(dataset) == "val":
        threshold, choose = 0.5, True
    else:
        threshold, info["threshold_source"] = 0.5, "default 0.5"
        logger.warning("No --val-predictions or --threshold: using 0.5 on a non-validation split.")
    results, details = evaluate_predictions(predictions, choose_threshold=choose,
                                            threshold=threshold, num_resamples=args.bootstrap,
                                            seed=args.seed)
    info.update(details)
    info["metrics"] = dict(results)
    os.makedirs(args.output, exist_ok=True)
    write_predictions(args.output, predictions, f"ensemble of {dataset}",
                      first.get("class_names"))
    write_json(os.path.join(args.output, "classification_metrics.json"), info)
    for name, value in results.items():
        print(f"{name}: {value:.4f}")
    return info


if __name__ == "__main__":
    main(sys.argv[1:])
