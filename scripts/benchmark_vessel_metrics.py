#!/usr/bin/env python
"""Seconds per vessel metric on one synthetic case, and the values, on this machine's CPU.

    OMP_NUM_THREADS=1 python scripts/benchmark_vessel_metrics.py --size 128 --seed 0

The case: ``--tubes`` straight tubes (random centres and directions, radius 2 voxels after two
dilations) in a ``--size``^3 volume with spacing 0.8 x 0.8 x 1.5 mm; the probabilities are the
mask blurred (sigma 1 voxel) plus gaussian noise (sd 0.05), the prediction is p >= 0.5. Each
metric of :mod:`vertspine.evaluation.vessel_metrics` is timed once after a warm-up on a small
crop (imports), then all of them together (what the vessel evaluator spends per case), and
vesselFM's own overlap path (scikit-learn's ``confusion_matrix`` over every voxel) beside it.
Not a test; nothing is written.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vertspine.evaluation import vessel_metrics as vm  # noqa: E402

SPACING = (0.8, 0.8, 1.5)


def synthetic_case(size: int, tubes: int, seed: int):
    """(gt bool [size]^3, prob float64 [size]^3) as described in the module docstring."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size,) * 3, bool)
    for _ in range(tubes):
        centre, direction = rng.uniform(0.125 * size, 0.875 * size, 3), rng.normal(size=3)
        points = centre + np.linspace(-size, size, 4 * size)[:, None] * direction / \
            np.linalg.norm(direction)
        points = np.round(points).astype(int)
        gt[tuple(points[((points >= 0) & (points < size)).all(axis=1)].T)] = True
    gt = ndimage.binary_dilation(gt, iterations=2)
    noise = rng.normal(0.0, 0.05, gt.shape)
    return gt, np.clip(ndimage.gaussian_filter(gt.astype(float), 1.0) + noise, 0.0, 1.0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="voxels per side")
    parser.add_argument("--tubes", type=int, default=12, help="tubes in the volume")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # MONAI's own deprecation notice
    gt, prob = synthetic_case(args.size, args.tubes, args.seed)
    pred = prob >= 0.5
    crop = (slice(0, 16),) * 3
    vm.vessel_metrics(pred[crop], gt[crop], SPACING, prob=prob[crop])  # imports, untimed
    print(f"{args.size}^3 voxels, spacing {SPACING} mm, {np.count_nonzero(gt)} vessel voxels")
    timed = [("overlap", lambda: vm.overlap_metrics(pred, gt)),
             ("clDice", lambda: vm.centerline_dice(pred, gt)),
             ("Betti", lambda: vm.betti_errors(pred, gt)),
             ("HD95", lambda: {"HD95 mm": vm.hausdorff_distance_95(pred, gt, SPACING)}),
             ("NSD@1mm", lambda: {"NSD": vm.normalized_surface_dice(pred, gt, SPACING, 1.0)}),
             ("AUROC/AP", lambda: vm.probability_metrics(prob, gt))]
    for name, compute in timed:
        start = time.perf_counter()
        values = compute()
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if not k.endswith(("_pred",
                                                                                       "_gt")))
        print(f"{name:9s} {time.perf_counter() - start:6.2f} s   {shown}")
    start = time.perf_counter()
    vm.vessel_metrics(pred, gt, SPACING, prob=prob)
    print(f"{'all':9s} {time.perf_counter() - start:6.2f} s   (one case of the vessel evaluator)")
    from sklearn.metrics import confusion_matrix

    start = time.perf_counter()
    confusion_matrix(gt.ravel(), pred.ravel())
    print(f"vesselFM's overlap path (sklearn confusion_matrix): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
