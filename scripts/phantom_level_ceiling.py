#!/usr/bin/env python
"""Print the landmark ceiling of IDR for the phantom vertebra datasets (see
:mod:`vertspine.data.phantom.landmarks`): the best share of vertebrae a model can name from the
phantom's landmarks alone, and how many images have 1, 2, ... consistent run positions.

    python scripts/phantom_level_ceiling.py
    python scripts/phantom_level_ceiling.py --datasets phantom_vertebrae_val
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
from detectron2.data import DatasetCatalog  # noqa: E402

from vertspine.data.phantom.landmarks import landmark_ceiling  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+",
                        default=["phantom_vertebrae_train", "phantom_vertebrae_val"])
    args = parser.parse_args(argv)
    for name in args.datasets:
        records = DatasetCatalog.get(name)
        # contiguous ids 0..24 in the records; VerSe ids are 1 + contiguous
        images = [[a["category_id"] + 1 for a in r["annotations"]] for r in records
                  if r.get("annotations")]
        ceiling, counts = landmark_ceiling(images)
        histogram = sorted(collections.Counter(counts).items())
        print(f"{name}: {len(images)} images, {sum(map(len, images))} vertebrae, "
              f"landmark ceiling of IDR {ceiling:.1f}%; images by number of consistent "
              f"run positions: {dict(histogram)}")


if __name__ == "__main__":
    main()
