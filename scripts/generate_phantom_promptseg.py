#!/usr/bin/env python
"""Write the phantom box-prompted segmentation data ahead of time and print what it holds.

    python scripts/generate_phantom_promptseg.py                 # under $VERTSPINE_DATASETS
    python scripts/generate_phantom_promptseg.py --root /data --num-2d 400 50 200 --num-3d 96 24 24

Writes ``<root>/phantom_promptseg_2d`` and ``<root>/phantom_promptseg_3d`` (the folders the
``phantom_promptseg_{2d,3d}_{train,val,test}`` datasets load), each only when its manifest
differs from the requested parameters. Prints the generation time and, per split, the cases,
objects and records (3D: labelled slices). The registered datasets expect the defaults: a folder
written with other counts is rewritten when they load (use
``register_phantom_prompt_seg(root, PromptSegPhantomConfig(...))`` for other counts).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vertspine.data.datasets_root import datasets_root  # noqa: E402
from vertspine.data.prompt_seg import (  # noqa: E402
    PromptSegPhantomConfig,
    ensure_phantom_prompt_seg,
    load_prompt_seg_records,
    read_prompt_seg_npz,
)
from vertspine.data.spine_categories import SPLITS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (defaults: PromptSegPhantomConfig's)."""
    defaults = PromptSegPhantomConfig()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=datasets_root(),
                        help="parent folder (default: %(default)s)")
    parser.add_argument("--num-2d", type=int, nargs=3, default=defaults.num_2d,
                        metavar=("TRAIN", "VAL", "TEST"), help="2D cases per split")
    parser.add_argument("--num-3d", type=int, nargs=3, default=defaults.num_3d,
                        metavar=("TRAIN", "VAL", "TEST"), help="3D volumes per split")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed")
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=(2, 3),
                        help="which sets to write")
    return parser.parse_args(argv)


def summary(folder: str) -> str:
    """Cases, objects and records of each split of a written folder."""
    lines = []
    for split in SPLITS:
        records = load_prompt_seg_records(os.path.join(folder, split))
        files = sorted({r["file_name"] for r in records})
        objects = sum(len(np.unique(read_prompt_seg_npz(f).gts)) - 1 for f in files)
        lines.append(f"  {split}: {len(files)} cases, {objects} objects, {len(records)} records")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Generate (if needed) and summarise the requested sets."""
    args = parse_args(argv)
    cfg = PromptSegPhantomConfig(num_2d=tuple(args.num_2d), num_3d=tuple(args.num_3d),
                                 seed=args.seed)
    for dims in args.dims:
        folder = os.path.join(args.root, f"phantom_promptseg_{dims}d")
        start = time.perf_counter()
        ensure_phantom_prompt_seg(folder, dims, cfg)
        print(f"{dims}D phantom at {os.path.abspath(folder)} "
              f"({time.perf_counter() - start:.1f} s)")
        print(summary(folder))


if __name__ == "__main__":
    main()
