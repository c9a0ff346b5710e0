#!/usr/bin/env python
"""Draw saved predictions (left) beside the ground truth (right) for every image of a dataset.

    python tools/visualize_json_results.py \
        --input output/run/inference/vindr_spinexr_val/coco_instances_results.json \
        --dataset vindr_spinexr_val --output output/run/vis --conf-threshold 0.25

``--input`` is the ``coco_instances_results.json`` an evaluator wrote (COCO category ids, boxes
[x, y, w, h]); predictions scoring above ``--conf-threshold`` are drawn. Writes
``<output>/<image file stem>.png`` of size (2 W) x H, atomically, with detectron2's
``Visualizer`` (``overlay_instances``, one fixed colour per class from detectron2's colormap, so
a class has the same colour on both sides and in every run). ``--register NAME JSON IMAGE_ROOT``
registers a COCO dataset first (as ``DATASETS.COCO_JSON`` does for train_net.py).
"""
import argparse
import collections
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.structures import Boxes, BoxMode, Instances  # noqa: E402
from detectron2.utils.colormap import colormap  # noqa: E402
from detectron2.utils.visualizer import Visualizer  # noqa: E402

from vertspine.data import read_image, register_coco_dataset  # noqa: E402
from vertspine.utils.file_io import write_png  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", required=True, help="coco_instances_results.json")
    parser.add_argument("--dataset", required=True,
                        help="registered dataset name, e.g. vindr_spinexr_val")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--conf-threshold", type=float, default=0.25,
                        help="draw predictions scoring above this (default: %(default)s)")
    parser.add_argument("--register", nargs=3, metavar=("NAME", "JSON", "IMAGE_ROOT"),
                        help="register a COCO json dataset under NAME first")
    return parser.parse_args(argv)


def create_instances(predictions, image_size, conf_threshold, dataset_id_to_contiguous):
    """The predictions of one image scoring above ``conf_threshold`` as detectron2 Instances.

    Args:
        predictions: COCO result dicts (``bbox`` XYWH absolute, ``category_id`` dataset id).
        image_size: (H, W).
        conf_threshold: keep scores > this.
        dataset_id_to_contiguous: category id map (identity when empty).
    Returns:
        Instances with ``pred_boxes`` (XYXY absolute), ``scores``, ``pred_classes``.
    """
    instances = Instances(image_size)
    kept = [p for p in predictions if p["score"] > conf_threshold]
    boxes = np.asarray([p["bbox"] for p in kept], dtype=np.float64).reshape(-1, 4)
    instances.pred_boxes = Boxes(BoxMode.convert(boxes, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS))
    instances.scores = np.asarray([p["score"] for p in kept], dtype=np.float64)
    instances.pred_classes = np.asarray(
        [dataset_id_to_contiguous.get(p["category_id"], p["category_id"]) for p in kept],
        dtype=np.int64,
    )
    return instances


def draw(image, metadata, boxes, classes, scores=None):
    """RGB uint8 [H, W, 3] with XYXY ``boxes`` labelled by class name (and score)."""
    names = metadata.get("thing_classes", None)
    palette = colormap(rgb=True, maximum=1)
    labels = [names[c] if names else str(c) for c in classes]
    if scores is not None:
        labels = [f"{label} {score:.0%}" for label, score in zip(labels, scores)]
    visualizer = Visualizer(image, metadata)
    if len(classes) == 0:
        return visualizer.output.get_image()
    colors = [palette[c % len(palette)] for c in classes]
    return visualizer.overlay_instances(
        boxes=np.asarray(boxes).reshape(-1, 4), labels=labels, assigned_colors=colors
    ).get_image()


def main(argv=None) -> int:
    """Write one drawing per dataset image; returns how many were written."""
    args = parse_args(argv)
    if args.register:
        register_coco_dataset(args.register[0], args.register[1], args.register[2])
    if not os.path.isfile(args.input):
        raise SystemExit(f"visualize_json_results.py: --input {args.input!r} does not exist; "
                         "give the coco_instances_results.json written by --eval-only "
                         "(OUTPUT_DIR/inference/<dataset>/).")
    with open(args.input, encoding="utf-8") as f:
        predictions = json.load(f)
    by_image = collections.defaultdict(list)
    for prediction in predictions:
        by_image[prediction["image_id"]].append(prediction)
    records = DatasetCatalog.get(args.dataset)  # loading sets the category id map
    metadata = MetadataCatalog.get(args.dataset)
    id_map = dict(metadata.get("thing_dataset_id_to_contiguous_id", {}))
    unknown = set(by_image) - {r["image_id"] for r in records}
    if unknown:
        raise ValueError(
            f"{args.input} has predictions for image ids {sorted(unknown)[:5]} that are not in "
            f"dataset '{args.dataset}': pass the dataset the predictions were made on."
        )
    for record in records:
        image = read_image(record["file_name"], format="RGB")
        instances = create_instances(by_image[record["image_id"]], image.shape[:2],
                                     args.conf_threshold, id_map)
        predicted = draw(image, metadata, instances.pred_boxes.tensor.numpy(),
                         instances.pred_classes.tolist(), instances.scores.tolist())
        annotations = [a for a in record.get("annotations", []) if not a.get("iscrowd", 0)]
        gt_boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
                    for a in annotations]
        truth = draw(image, metadata, gt_boxes, [a["category_id"] for a in annotations])
        drawing = np.concatenate([predicted, truth], axis=1)
        stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
        write_png(os.path.join(args.output, f"{stem}.png"), drawing[:, :, ::-1])  # RGB -> BGR
    print(f"wrote {len(records)} drawings (predictions | ground truth) to {args.output}")
    return len(records)


if __name__ == "__main__":
    main()
