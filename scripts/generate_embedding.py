#!/usr/bin/env python
"""Precompute VertFound's SAM box tokens (and CLIP image tokens) for a dataset.

    python scripts/generate_embedding.py --config-file configs/vertfound/<leaf>.yaml \
        --dataset verse19_train --output datasets/vertfound_cache/verse19_train.pth

Every non-crowd annotation of every record is prompted to SAM (image encoder once per image);
CLIP tokens are stored too when the CLIP image tower is frozen and no photometric augmentation
is configured (``--no-clip`` skips them). Images are read as the mapper reads them, without
augmentation. ``--engine onnxruntime|openvino`` runs SAM's image encoder exported (see
``vertspine.layers.engines``). The file records the identity of the encoders (model type,
weights sha256 or "random init seed N", a fingerprint of the weights, image size, pixel
mean/std, preprocessing);
training with ``MODEL.VERTFOUND.CACHE.PATH`` refuses a cache whose identity differs. The file is
written atomically. Trailing ``KEY VALUE`` pairs override the config.
"""
import argparse
import logging
import time

import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registrations)
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.structures import BoxMode
from detectron2.utils.logger import setup_logger

from vertspine.config import get_vertspine_cfg
from vertspine.data import read_image, register_datasets_from_config
from vertspine.engine.checkpoint import AtomicDetectionCheckpointer
from vertspine.layers.engines import ENGINES
from vertspine.utils.file_io import atomic_write
from vertspine.modeling.vertfound.cache import CACHE_FORMAT

logger = logging.getLogger("vertspine.generate_embedding")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--config-file", required=True, help="a VertFound config")
    parser.add_argument("--dataset", required=True, help="registered dataset name")
    parser.add_argument("--output", required=True, help="cache file to write (.pth)")
    parser.add_argument("--no-clip", action="store_true", help="store SAM tokens only")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="storage type of the tokens (float16 halves the file)")
    parser.add_argument("--batch-size", type=int, default=4, help="images per encoder call")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="what runs SAM's frozen image encoder (default: the config's "
                             "MODEL.VERTFOUND.SAM.ENGINE); the tokens do not depend on it beyond "
                             "float rounding")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def _image_and_boxes(record, image_format):
    """RGB image tensor [3, H, W], boxes [n, 4] XYXY pixels and annotation keys."""
    image = read_image(record["file_name"], format=image_format)
    tensor = torch.as_tensor(image.transpose(2, 0, 1).copy())
    if image_format == "BGR":
        tensor = tensor.flip(0)
    annotations = record.get("annotations", [])
    kept = [i for i, a in enumerate(annotations) if a.get("iscrowd", 0) == 0]
    boxes = torch.tensor([BoxMode.convert(annotations[i]["bbox"], annotations[i]["bbox_mode"],
                                          BoxMode.XYXY_ABS) for i in kept],
                         dtype=torch.float32).reshape(-1, 4)
    return tensor, boxes, [annotations[i].get("id", i) for i in kept]


def generate(cfg, dataset: str, include_clip: bool = True, dtype: str = "float32",
             batch_size: int = 4, records=None, model=None):
    """The cache dict for ``dataset`` (see :mod:`vertspine.modeling.vertfound.cache`).

    Args:
        records: only these records of the dataset (default: all of them).
        model: an already built VertFound to use (default: built from ``cfg``).
    """
    if cfg.MODEL.META_ARCHITECTURE != "VertFound":
        raise ValueError(f"{cfg.MODEL.META_ARCHITECTURE} is not VertFound; use a VertFound config.")
    node = cfg.MODEL.VERTFOUND
    if not node.SAM.FROZEN:
        raise ValueError("MODEL.VERTFOUND.SAM.FROZEN is False: tokens of a SAM that trains cannot "
                         "be cached. Set it True.")
    photometric = tuple(node.AUG.BRIGHTNESS) != (1.0, 1.0) or tuple(node.AUG.CONTRAST) != (1.0, 1.0)
    include_clip = include_clip and node.CLIP.FREEZE_IMAGE and not photometric
    if model is None:
        build_cfg = cfg.clone()
        build_cfg.defrost()
        build_cfg.MODEL.VERTFOUND.CACHE.PATH = ""  # the cache is what is being made
        model = build_model(build_cfg)
        if cfg.MODEL.WEIGHTS:
            AtomicDetectionCheckpointer(model, use_ema_weights=cfg.MODEL_EMA.ENABLED).load(
                cfg.MODEL.WEIGHTS)
    was_training = model.training
    model.eval()
    store = getattr(torch, dtype)
    records = DatasetCatalog.get(dataset) if records is None else records
    images = {}
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            chunk = records[start:start + batch_size]
            items = [_image_and_boxes(r, cfg.INPUT.FORMAT) for r in chunk]
            tokens = model.sam_encoder([i[0] for i in items], [i[1] for i in items])
            clip = None
            if include_clip:
                clip = model.clip_encoder(model.clip_encoder.preprocess([i[0] for i in items]))
            for k, (record, (_, boxes, keys), tok) in enumerate(zip(chunk, items, tokens)):
                entry = {"file_name": record["file_name"], "annotation_keys": keys,
                         "boxes": boxes, "sam_tokens": tok.cpu().to(store)}
                if clip is not None:
                    entry["clip_tokens"] = clip[k].cpu().to(store)
                images[record["image_id"]] = entry
    model.train(was_training)
    return {"format": CACHE_FORMAT, "identity": model.embedding_identity(include_clip),
            "dataset": dataset, "images": images}


def main(argv=None):
    args = parse_args(argv)
    setup_logger(name="vertspine")
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if args.engine:
        cfg.MODEL.VERTFOUND.SAM.ENGINE = args.engine
    cfg.freeze()
    register_datasets_from_config(cfg)
    start = time.perf_counter()
    data = generate(cfg, args.dataset, not args.no_clip, args.dtype, args.batch_size)
    with atomic_write(args.output, "wb") as f:
        torch.save(data, f)
    boxes = sum(len(e["annotation_keys"]) for e in data["images"].values())
    clip = "yes" if "clip" in data["identity"] else "no"
    print(f"Wrote {args.output}: {len(data['images'])} images, {boxes} boxes, CLIP tokens {clip}, "
          f"SAM {data['identity']['sam']['weights']}, {time.perf_counter() - start:.1f} s.")
    return args.output


if __name__ == "__main__":
    main()
