#!/usr/bin/env python
"""Convert the VinDr-SpineXR release (DICOM + CSV) into the PNGs and COCO jsons vertspine uses.

    python tools/convert_vindr.py --vindr-root /data/vindr-spinexr            # native size, 8 bit
    python tools/convert_vindr.py --vindr-root /data/vindr-spinexr --max-size 2048 --workers 8

Reads ``annotations/{train,test}.csv`` and ``{train,test}_images/**/<image_id>.dicom``; writes
``images/{train,test}/<image_id>.png``, ``annotations/{train,val,test}.json`` (val = a seeded
share of the training *patients*: studies grouped by DICOM PatientID, a study alone where its
DICOMs carry none), ``conversion_report.json`` (images and boxes per class per split,
clipped/dropped boxes, the validation grouping), and prints the counts. The default output is
``$VERTSPINE_DATASETS/vindr_spinexr``, where ``vindr_spinexr_{train,val,test}`` are registered.
DICOM -> PNG steps: ``vertspine/data/vindr/images.py``; json format:
``vertspine/data/vindr/coco.py``.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops)
from vertspine.data.vindr import (  # noqa: E402
    ConversionOptions,
    convert_vindr,
    default_vindr_root,
    format_report,
)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (defaults: ConversionOptions')."""
    defaults = ConversionOptions()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vindr-root", required=True,
                        help="release folder holding annotations/ and {train,test}_images/")
    parser.add_argument("--output", default=default_vindr_root(),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction,
                        help="share of training patients (studies without PatientID) for "
                             "validation (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of the patient split (default: %(default)s)")
    parser.add_argument("--max-size", type=int, default=defaults.max_size,
                        help="longest PNG side in pixels, boxes rescaled; 0 = native (default)")
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=defaults.bit_depth,
                        help="PNG bit depth (default: %(default)s)")
    parser.add_argument("--drop-invalid-boxes", action="store_true",
                        help="skip CSV lesion rows with bad coordinates (counted), not fail")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help="processes converting DICOMs (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="rewrite existing PNGs (also when converted with other settings)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Convert, print the report table, return the report."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    options = ConversionOptions(
        val_fraction=args.val_fraction, seed=args.seed, max_size=args.max_size,
        bit_depth=args.bit_depth, drop_invalid_boxes=args.drop_invalid_boxes,
        workers=args.workers, overwrite=args.overwrite,
    )
    report = convert_vindr(args.vindr_root, args.output, options)
    print(f"VinDr-SpineXR converted into {os.path.abspath(args.output)}")
    print(format_report(report))
    print("invalid CSV rows dropped:", json.dumps(report["invalid_rows_dropped"]))
    print("images with both 'No finding' and boxes:", json.dumps(report["mixed_label_images"]))
    print("validation grouping:", json.dumps(report["validation_grouping"]))
    print(f"report: {os.path.join(args.output, 'conversion_report.json')}")
    return report


if __name__ == "__main__":
    main()
