#!/usr/bin/env python
"""Training iterations/s and inference images/s of a detection config on the phantom data.

    python scripts/benchmark_detection.py \
        --config-file configs/phantom/faster_rcnn_R_50_FPN_phantom_lesions.yaml --iters 20
    python scripts/benchmark_detection.py --config-file CONFIG --iters 50 MODEL.DEVICE cuda

Builds the model, optimizer and train loader of the config (DATASETS.TRAIN, phantom lesions
in the phantom configs), runs ``--warmup`` untimed iterations then ``--iters`` timed ones
(data loading, forward, backward, optimizer step), then inference on DATASETS.TEST[0] with
the test loader (batch 1, as detectron2's evaluation) for ``--warmup`` + ``--iters`` images.
Prints the config, device, torch threads, batch, mean input size, then the two figures. Weights
are the initialisation: speed does not depend on them. Not a test; nothing is written.
"""
import argparse
import itertools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
import torch  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from vertspine.config import get_vertspine_cfg  # noqa: E402
from vertspine.data import register_datasets_from_config  # noqa: E402
from vertspine.engine import Trainer  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, help="a vertspine YAML config")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations (and images)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def benchmark_training(cfg, iters: int, warmup: int):
    """(iterations/s, mean input [H, W]) over ``iters`` training iterations after ``warmup``."""
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    loader = iter(Trainer.build_train_loader(cfg))
    device = next(model.parameters()).device
    model.train()
    sizes, start = [], 0.0
    with EventStorage(0):  # detectron2 models log training statistics into one
        for step in range(warmup + iters):
            if step == warmup:
                _sync(device)
                start = time.perf_counter()
            batch = next(loader)
            sizes += [tuple(d["image"].shape[-2:]) for d in batch]
            losses = sum(model(batch).values())
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()
    _sync(device)
    elapsed = time.perf_counter() - start
    mean_size = [sum(s[i] for s in sizes) / len(sizes) for i in (0, 1)]
    return iters / elapsed, mean_size, model


def benchmark_inference(cfg, model, iters: int, warmup: int) -> float:
    """Images/s of ``model`` in eval mode on DATASETS.TEST[0], batch 1, after ``warmup``."""
    loader = Trainer.build_test_loader(cfg, cfg.DATASETS.TEST[0])
    device = next(model.parameters()).device
    model.eval()
    batches = itertools.cycle(loader)
    start = 0.0
    with torch.no_grad():
        for step in range(warmup + iters):
            if step == warmup:
                _sync(device)
                start = time.perf_counter()
            model(next(batches))
    _sync(device)
    return iters / (time.perf_counter() - start)


def main(argv=None) -> dict:
    """Run both benchmarks and print the figures; returns them."""
    args = parse_args(argv)
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    register_datasets_from_config(cfg)
    torch.manual_seed(cfg.SEED if cfg.SEED >= 0 else 0)
    print(f"config: {args.config_file} {' '.join(args.opts)}".rstrip())
    print(f"device: {cfg.MODEL.DEVICE}, torch threads: {torch.get_num_threads()}, "
          f"batch: {cfg.SOLVER.IMS_PER_BATCH}, data workers: {cfg.DATALOADER.NUM_WORKERS}, "
          f"datasets: train {cfg.DATASETS.TRAIN[0]}, test {cfg.DATASETS.TEST[0]}")
    train_rate, size, model = benchmark_training(cfg, args.iters, args.warmup)
    print(f"mean training input: {size[0]:.0f} x {size[1]:.0f} px (H x W)")
    print(f"training: {train_rate:.3f} iterations/s ({train_rate * cfg.SOLVER.IMS_PER_BATCH:.2f} "
          f"images/s) over {args.iters} iterations after {args.warmup} warm-up")
    infer_rate = benchmark_inference(cfg, model, args.iters, args.warmup)
    print(f"inference: {infer_rate:.3f} images/s (batch 1) over {args.iters} images after "
          f"{args.warmup} warm-up")
    return {"train_iters_per_s": train_rate, "inference_images_per_s": infer_rate}


if __name__ == "__main__":
    main()
