#!/usr/bin/env python
"""Write the phantom spine dataset to a folder and print what it holds.

    python scripts/generate_phantom.py --root datasets/phantom --num-train 200 --num-val 50 \
        --num-test 50

Regenerates only when the folder's manifest differs from the requested parameters. Prints,
per split: images, normal images (no lesion), lesions per class and vertebrae per level.
"""
import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vertspine.data.builtin import default_phantom_root  # noqa: E402
from vertspine.data.phantom import SPLITS, PhantomConfig, ensure_phantom_dataset  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (defaults: PhantomConfig's)."""
    defaults = PhantomConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", default=default_phantom_root(), help="output folder (default: %(default)s)"
    )
    parser.add_argument("--num-train", type=int, default=defaults.num_train, help="train images")
    parser.add_argument("--num-val", type=int, default=defaults.num_val, help="val images")
    parser.add_argument("--num-test", type=int, default=defaults.num_test, help="test images")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="base seed")
    parser.add_argument(
        "--size", type=int, default=defaults.image_height, help="image height and width, px"
    )
    return parser.parse_args(argv)


def split_summary(vertebrae_json: str, lesions_json: str) -> str:
    """Counts of one split: images, normal images, lesions per class, vertebrae per level."""
    lines = []
    with open(lesions_json, encoding="utf-8") as f:
        lesions = json.load(f)
    with open(vertebrae_json, encoding="utf-8") as f:
        vertebrae = json.load(f)
    abnormal = {a["image_id"] for a in lesions["annotations"]}
    images = len(lesions["images"])
    lines.append(f"  images: {images}, normal: {images - len(abnormal)}")
    for title, coco in (("lesions", lesions), ("vertebrae", vertebrae)):
        counts = collections.Counter(a["category_id"] for a in coco["annotations"])
        per_class = ", ".join(f"{c['name']}: {counts[c['id']]}" for c in coco["categories"])
        lines.append(f"  {title} ({sum(counts.values())}): {per_class}")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Generate (if needed) and summarise the dataset."""
    args = parse_args(argv)
    cfg = PhantomConfig(image_height=args.size, image_width=args.size, num_train=args.num_train,
                        num_val=args.num_val, num_test=args.num_test, seed=args.seed)
    start = time.perf_counter()
    paths = ensure_phantom_dataset(args.root, cfg)
    print(f"phantom dataset at {os.path.abspath(args.root)} ({time.perf_counter() - start:.1f} s)")
    for split in SPLITS:
        print(f"{split}:")
        print(split_summary(paths[split]["vertebrae_json"], paths[split]["lesions_json"]))


if __name__ == "__main__":
    main()
