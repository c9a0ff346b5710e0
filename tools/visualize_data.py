#!/usr/bin/env python
"""Draw the ground truth of a registered dataset onto its images, to check data by eye.

    python tools/visualize_data.py --dataset phantom_lesions_train --output output/vis --num 8

Writes ``<output>/<image file name>.png`` with boxes, class names and masks (when present).
"""
import argparse
import os

import vertspine  # noqa: F401  (detectron2 without compiled ops; dataset registrations)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.visualizer import Visualizer

from vertspine.data import read_image
from vertspine.utils.file_io import write_png


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a registered dataset name")
    parser.add_argument("--output", required=True, help="folder for the drawings")
    parser.add_argument("--num", type=int, default=8, help="how many images (0 = all)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    records = DatasetCatalog.get(args.dataset)
    metadata = MetadataCatalog.get(args.dataset)
    for record in records[: args.num or None]:
        image = read_image(record["file_name"], format="RGB")
        drawing = Visualizer(image, metadata=metadata).draw_dataset_dict(record)
        name = os.path.splitext(os.path.basename(record["file_name"]))[0] + ".png"
        write_png(os.path.join(args.output, name), drawing.get_image()[:, :, ::-1])  # RGB -> BGR
    print(f"wrote {min(len(records), args.num or len(records))} drawings to {args.output}")


if __name__ == "__main__":
    main()
