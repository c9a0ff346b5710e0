#!/usr/bin/env python
"""Write the vessel phantom splits ahead of use and print what they hold.

    python scripts/generate_phantom_vessels.py                      # all five splits, defaults
    python scripts/generate_phantom_vessels.py --splits test --num-test 64 --seed 1

Writes under ``--root`` (default ``$VERTSPINE_DATASETS/phantom_vessels``, where the
``phantom_vessels_*`` datasets read) and regenerates a split only when its manifest differs from
the requested parameters. The datasets registered on import use the default parameters, so
other counts or seeds are for a separate root (register it with
``vertspine.data.phantom_vessels.register_phantom_vessels(root, cfg)``).

Prints per split: volumes, seconds (wall and CPU), shapes, spacing, anisotropic and oblique
volumes, label fraction, branches, loops, appearance (inverted share, noise types).
"""
import argparse
import collections
import json
import logging
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vertspine.data.phantom_vessels import (  # noqa: E402
    SPLITS,
    VesselPhantomConfig,
    default_vessel_root,
    ensure_vessel_split,
)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (defaults: VesselPhantomConfig's)."""
    defaults = VesselPhantomConfig()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=default_vessel_root(),
                        help="output folder (default: %(default)s)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                        help="splits to write (default: all)")
    for split in SPLITS:
        flag = split.replace("_", "-")
        parser.add_argument(f"--num-{flag}", type=int, default=defaults.num_volumes(split),
                            help=f"{split} volumes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed")
    return parser.parse_args(argv)


def split_summary(cases_json: str) -> str:
    """Counts and ranges of one written split (from its cases.json)."""
    with open(cases_json, encoding="utf-8") as f:
        cases = list(json.load(f).values())
    fraction = np.array([c["label_fraction"] for c in cases])
    spacing = np.array([c["spacing"] for c in cases])
    shapes = collections.Counter("x".join(map(str, c["shape"])) for c in cases)
    anisotropic = int(np.sum(spacing.max(1) / spacing.min(1) > 1.01))
    noise = collections.Counter(c["appearance"]["noise_type"] for c in cases)
    return "\n".join([
        f"  shapes: {dict(shapes)}",
        f"  spacing: {spacing.min():.2f}-{spacing.max():.2f} mm, anisotropic: {anisotropic}, "
        f"oblique: {sum(c['oblique_deg'] > 0 for c in cases)}",
        f"  label fraction: mean {fraction.mean():.4f}, min {fraction.min():.4f}, "
        f"max {fraction.max():.4f}",
        f"  branches: mean {np.mean([c['num_branches'] for c in cases]):.1f}, loops: "
        f"{dict(collections.Counter(c['num_loops'] for c in cases))}",
        f"  inverted: {sum(c['appearance']['inverted'] for c in cases)}, noise: {dict(noise)}",
    ])


def main(argv=None) -> None:
    """Generate (if needed) and summarise the requested splits."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = VesselPhantomConfig(seed=args.seed, **{f"num_{split}": getattr(args, f"num_{split}")
                                                 for split in SPLITS})
    for split in args.splits:
        wall, cpu = time.perf_counter(), time.process_time()
        paths = ensure_vessel_split(args.root, split, cfg)
        print(f"{split}: {cfg.num_volumes(split)} volumes in {os.path.abspath(paths['folder'])} "
              f"({time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU)")
        print(split_summary(paths["cases"]))


if __name__ == "__main__":
    main()
