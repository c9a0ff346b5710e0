#!/usr/bin/env python
"""Write a held-out phantom abnormal-vs-normal set as an ImageFolder, for a test split.

    python tools/make_phantom_image_folder.py --output output/phantom_abnormal_heldout \
        --seed 1 --num-images 100

generates ``--num-images`` phantom radiographs with another seed than the built-in phantom data
(its "val" split, ``PhantomConfig(num_train=0, num_val=N, num_test=0, seed=S)``) and copies them into
``OUTPUT/images/{normal,abnormal}/``. Register it as a test split with the class order given
(sorted order would make "abnormal" label 0):
``DATASETS.IMAGE_FOLDER "[['phantom_abnormal_heldout_test', 'OUTPUT/images',
['normal', 'abnormal']]]"`` (the command prints the line).
"""
import argparse
import os
import sys

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
from vertspine.data.builtin_classification import export_abnormal_image_folder
from vertspine.data.phantom import PhantomConfig, generate_phantom_dataset, phantom_dataset_paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=1, help="phantom seed (built-in data: 0)")
    parser.add_argument("--num-images", type=int, default=100, help="images to generate")
    args = parser.parse_args(argv)
    if args.seed == PhantomConfig().seed:
        parser.error(f"--seed {args.seed} is the built-in phantom data's seed; a held-out set "
                     "needs another one.")
    phantom_root = os.path.join(args.output, "phantom")
    generate_phantom_dataset(phantom_root, PhantomConfig(num_train=0, num_val=args.num_images,
                                                         seed=args.seed))
    paths = phantom_dataset_paths(phantom_root)["val"]
    counts = export_abnormal_image_folder(paths["lesions_json"], paths["image_root"],
                                          os.path.join(args.output, "images"))
    folder = os.path.join(args.output, "images")
    print(f"{folder}: {counts}\nRegister with: DATASETS.IMAGE_FOLDER "
          f"\"[['phantom_abnormal_heldout_test', '{folder}', ['normal', 'abnormal']]]\"")
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
