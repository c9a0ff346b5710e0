#!/usr/bin/env python
"""Speed of VertFound: training iterations/s with and without the embedding cache, and
inference images/s, for one config.

    python scripts/benchmark_vertfound.py \
        --config-file configs/quick_schedules/vertfound_tiny_instant_test.yaml
    python scripts/benchmark_vertfound.py \
        --config-file configs/phantom/vertfound_tiny_phantom_vertebrae.yaml --iters 10

Training runs forward, backward and an AdamW step on one fixed batch of SOLVER.IMS_PER_BATCH
records of the first training dataset (mapped without augmentation, so the cache applies). The
cache run needs a frozen SAM (the script says so otherwise); its tokens are made in memory for
that batch first (not timed). Inference maps and runs one test image at a time. Prints the
config name, the encoder sizes, the device and thread count, then the figures.
"""
import argparse
import os
import tempfile
import time

import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registrations)
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model

from vertspine.config import get_vertspine_cfg
from vertspine.data import register_datasets_from_config
from vertspine.modeling.vertfound import VertFoundDatasetMapper


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--iters", type=int, default=5, help="timed training iterations")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--images", type=int, default=8, help="timed inference images")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def _describe(cfg, model, batch):
    node = cfg.MODEL.VERTFOUND
    sam, clip = model.sam_encoder, model.clip_encoder
    grid = (clip.image_size // clip.visual.patch_size[0]) ** 2
    boxes = sum(len(x["instances"]) for x in batch)
    clip_name = "config dict" if node.CLIP.MODEL_CONFIG else node.CLIP.MODEL_NAME
    print(f"SAM {node.SAM.MODEL_TYPE}: {sam.image_size} px input, token width {sam.token_dim}, "
          f"frozen {node.SAM.FROZEN}")
    print(f"CLIP {clip_name}: {clip.image_size} px, {grid + 1} tokens x width {clip.width}, "
          f"layers {clip.layers}, image tower frozen {node.CLIP.FREEZE_IMAGE}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"batch: {len(batch)} images, {boxes} boxes; trainable parameters {trainable:,}; "
          f"device {cfg.MODEL.DEVICE}, torch threads {torch.get_num_threads()}")


def _train_speed(model, batch, iters, warmup):
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    for i in range(warmup + iters):
        if i == warmup:
            start = time.perf_counter()
        losses = model(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    return iters / (time.perf_counter() - start)


def _cache_model(cfg, model, records, dataset):
    from generate_embedding import generate  # scripts/ is on sys.path when run as a script

    data = generate(cfg, dataset, records=records, model=model)
    path = os.path.join(tempfile.mkdtemp(prefix="vertfound_bench_"), "cache.pth")
    torch.save(data, path)
    cached_cfg = cfg.clone()
    cached_cfg.defrost()
    cached_cfg.MODEL.VERTFOUND.CACHE.PATH = path
    cached = build_model(cached_cfg)
    cached.load_state_dict(model.state_dict())
    return cached


def main(argv=None):
    args = parse_args(argv)
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    register_datasets_from_config(cfg)
    dataset = cfg.DATASETS.TRAIN[0]
    records = DatasetCatalog.get(dataset)[: cfg.SOLVER.IMS_PER_BATCH]
    plain = VertFoundDatasetMapper(cfg, is_train=True, augmentations=[])
    batch = [plain(r) for r in records]
    torch.manual_seed(0)
    model = build_model(cfg)
    print(f"config: {args.config_file} (dataset {dataset})")
    _describe(cfg, model, batch)

    speed = _train_speed(model, batch, args.iters, args.warmup)
    print(f"training without cache: {speed:.3f} it/s ({len(batch) * speed:.2f} images/s)")
    if cfg.MODEL.VERTFOUND.SAM.FROZEN:
        cached = _cache_model(cfg, model, records, dataset)
        what = "SAM + CLIP tokens" if cached.use_cached_clip else "SAM tokens"
        speed = _train_speed(cached, batch, args.iters, args.warmup)
        print(f"training with cache ({what}): {speed:.3f} it/s ({len(batch) * speed:.2f} images/s)")
    else:
        print("training with cache: n/a (MODEL.VERTFOUND.SAM.FROZEN is False: a training SAM "
              "cannot use cached tokens; add MODEL.VERTFOUND.SAM.FROZEN True to compare)")

    model.eval()
    test_mapper = VertFoundDatasetMapper(cfg, is_train=False)
    test_records = DatasetCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else dataset)
    test_records = test_records[: args.images + 1]
    with torch.no_grad():
        model([test_mapper(test_records[0])])  # warm-up
        start = time.perf_counter()
        for record in test_records[1:]:
            model([test_mapper(record)])
        elapsed = time.perf_counter() - start
    print(f"inference: {(len(test_records) - 1) / elapsed:.2f} images/s "
          f"(mapping included, one image per call)")


if __name__ == "__main__":
    main()
