#!/usr/bin/env python
"""Average the weights of several checkpoints of one run into one MODEL.WEIGHTS file.

    python tools/average_checkpoints.py \
        --inputs output/run/model_0002099.pth output/run/model_0002399.pth output/run/model_0002699.pth \
        --output output/run/model_average_2100_2700.pth
    python train_net.py --config-file CONFIG --eval-only \
        MODEL.WEIGHTS output/run/model_average_2100_2700.pth

Each checkpoint's ``model`` entry is averaged tensor by tensor
(:func:`vertspine.engine.checkpoint_average.average_checkpoints`); the output, written
atomically, holds ``model`` and ``averaged_from`` (the input paths). Which checkpoints to
average is a model choice: make it on the validation split.
"""
import argparse
import logging

import torch

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
from vertspine.utils.file_io import atomic_write
from vertspine.engine.checkpoint_average import average_checkpoints

logger = logging.getLogger("vertspine.average_checkpoints")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", nargs="+", required=True, help="two or more checkpoints")
    parser.add_argument("--output", required=True, help="the averaged checkpoint (.pth)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    averaged = average_checkpoints(args.inputs)
    with atomic_write(args.output, "wb") as f:
        torch.save({"model": averaged, "averaged_from": list(args.inputs)}, f)
    logger.info("Wrote the average of %d checkpoints (%d tensors) to %s",
                len(args.inputs), len(averaged), args.output)


if __name__ == "__main__":
    main()
