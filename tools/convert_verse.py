#!/usr/bin/env python
"""Convert VerSe19/VerSe20 CTs into sagittal PNG slices with COCO vertebra-level boxes.

    python tools/convert_verse.py --input /data/verse19 --name verse19
    python tools/convert_verse.py --input /data/verse20 --name verse20 --split-mode random \\
        --split-ratios 0.7 0.15 0.15 --seed 0

Writes ``<output>/images/{train,val,test}/*.png`` and
``<output>/annotations/<name>_{train,val,test}.json`` (default output
``$VERTSPINE_DATASETS/<name>``, the layout the registered ``verse19_*``/``verse20_*`` datasets
read), then prints a report: patients, scans, slices and boxes per level per split, and what
was left out (T13, sacrum, empty slices, unpaired files). See vertspine/data/verse/ for the
frames and choices.
"""
import argparse
import sys

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
from vertspine.data.datasets_root import datasets_root
from vertspine.data.verse import VerseConversionConfig, convert_verse

_DEFAULTS = VerseConversionConfig()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="VerSe folder (searched recursively)")
    parser.add_argument("--name", required=True, help="dataset name / json prefix, e.g. verse19")
    parser.add_argument("--output", default=None,
                        help="output folder (default $VERTSPINE_DATASETS/<name>, datasets/<name>)")
    parser.add_argument("--num-slices", type=int, default=_DEFAULTS.num_slices)
    parser.add_argument("--slice-step-mm", type=float, default=_DEFAULTS.slice_step_mm)
    parser.add_argument("--spacing-mm", type=float, default=_DEFAULTS.spacing_mm,
                        help="output pixel size in mm")
    parser.add_argument("--window-center", type=float, default=_DEFAULTS.window_center)
    parser.add_argument("--window-width", type=float, default=_DEFAULTS.window_width)
    parser.add_argument("--min-box-area", type=float, default=_DEFAULTS.min_box_area,
                        help="minimum vertebra mask area on a slice, output pixels^2")
    parser.add_argument("--t13", choices=("skip", "drop-slice"), default=_DEFAULTS.t13)
    parser.add_argument("--keep-empty", action="store_true", help="keep slices without boxes")
    parser.add_argument("--split-mode", choices=("auto", "folders", "random"),
                        default=_DEFAULTS.split_mode)
    parser.add_argument("--split-ratios", type=float, nargs=3, default=_DEFAULTS.split_ratios,
                        metavar=("TRAIN", "VAL", "TEST"))
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output = args.output or datasets_root(args.name)
    config = VerseConversionConfig(
        num_slices=args.num_slices, slice_step_mm=args.slice_step_mm, spacing_mm=args.spacing_mm,
        window_center=args.window_center, window_width=args.window_width,
        min_box_area=args.min_box_area, t13=args.t13, keep_empty=args.keep_empty,
        split_mode=args.split_mode, split_ratios=tuple(args.split_ratios), seed=args.seed,
    )
    try:
        report = convert_verse(args.input, output, args.name, config)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
