#!/usr/bin/env python
"""Print the landmark ceiling of IDR for the phantom vertebra datasets (see
:mod:`vertspine.data.phantom.landmarks`): the best share of vertebrae a model can name from the
phantom's landmarks alone, and how many images have 1, 2, ... consistent run positions.

    python scripts/phantom_level_ceiling.py
    python scripts/phantom_level_ceiling.py --datasets phantom_vertebrae_val

With ``--predictions OUTPUT/inference/phantom_vertebrae_val/vertebra_level_per_image.json``
(written by the ``vertebra_level`` evaluator) it also prints the model's IDR and IRA on the
images whose landmarks pin the run to one position, on the ambiguous ones and on those whose
landmarks point to the wrong position (a transitional L6 above the sacrum reads as L5).
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
from detectron2.data import DatasetCatalog  # noqa: E402

from vertspine.data.phantom import VERTEBRA_LEVELS  # noqa: E402
from vertspine.data.phantom.landmarks import consistent_shifts, landmark_ceiling  # noqa: E402


def print_ceiling(name: str) -> None:
    """The landmark ceiling of the registered dataset ``name``."""
    records = DatasetCatalog.get(name)
    # records hold contiguous ids 0..24; VerSe ids are 1 + contiguous
    images = [[a["category_id"] + 1 for a in r["annotations"]] for r in records
              if r.get("annotations")]
    ceiling, counts = landmark_ceiling(images)
    histogram = dict(sorted(collections.Counter(counts).items()))
    print(f"{name}: {len(images)} images, {sum(map(len, images))} vertebrae, landmark ceiling "
          f"of IDR {ceiling:.1f}%; images by number of consistent run positions: {histogram}")


def print_split_results(path: str) -> None:
    """IDR/IRA of a per-image prediction file on landmark-pinned vs ambiguous images."""
    with open(path, encoding="utf-8") as f:
        per_image = json.load(f)
    pinned, ambiguous = "pinned (1 position)", "ambiguous (2+ positions)"
    misleading = "misleading (transitional L6)"
    # right, vertebrae, all right, images
    groups = {pinned: [0, 0, 0, 0], ambiguous: [0, 0, 0, 0], misleading: [0, 0, 0, 0]}
    for image in per_image:
        if not image["gt"]:
            continue
        ids = [VERTEBRA_LEVELS.index(name) + 1 for name in image["gt"]]
        right = sum(g == p for g, p in zip(image["gt"], image["pred"]))
        shifts = consistent_shifts(ids)
        group = groups[misleading if 0 not in shifts else pinned if shifts == [0] else ambiguous]
        group[0] += right
        group[1] += len(ids)
        group[2] += int(right == len(ids))
        group[3] += 1
    for name, (right, vertebrae, all_right, images) in groups.items():
        if images:
            print(f"{path}: {name}: {images} images, {vertebrae} vertebrae, "
                  f"IDR {100 * right / vertebrae:.1f}%, IRA {100 * all_right / images:.1f}%")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+",
                        default=["phantom_vertebrae_train", "phantom_vertebrae_val"])
    parser.add_argument("--predictions", help="a vertebra_level_per_image.json to split")
    args = parser.parse_args(argv)
    for name in args.datasets:
        print_ceiling(name)
    if args.predictions:
        print_split_results(args.predictions)


if __name__ == "__main__":
    main()
