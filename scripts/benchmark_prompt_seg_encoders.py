#!/usr/bin/env python
"""Forward time of box-prompted segmentation image encoders, side by side, in one run.

    python scripts/benchmark_prompt_seg_encoders.py --encoders efficientvit_sam_l0 \
        --timm tiny_vit_5m_224 --size 256 --batch 1 --threads 1 --iters 20

Each ``--encoders`` name is built from ``PROMPT_SEG_ENCODER_REGISTRY`` (random weights: speed
does not depend on them) at ``INPUT.PROMPT_SEG.IMAGE_SIZE`` = ``--size``; each ``--timm`` name
is a timm model (built with ``img_size=--size`` where it takes it) timed to its last feature map
(``forward_features``): a stand-in where the real encoder is not at hand (timm's classification
TinyViT-5M for LiteMedSAM's TinyViT, whose last stages keep 64x64 and so cost more). Every
model runs in eval mode under ``torch.inference_mode`` on ``--batch`` images of [3, S, S]:
``--warmup`` untimed forwards, then ``--iters`` timed ones, alternating the models so that a
change of machine load hits all alike. Prints per model: parameters, output shape, median and
mean milliseconds per forward, images/s, and each model's time relative to the first. Not a
test; nothing is written.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
import torch  # noqa: E402

from vertspine.config import get_vertspine_cfg  # noqa: E402
from vertspine.modeling.prompt_seg import PROMPT_SEG_ENCODER_REGISTRY  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="*", default=["efficientvit_sam_l0"],
                        help="registered prompt-seg encoder names")
    parser.add_argument("--timm", nargs="*", default=["tiny_vit_5m_224"],
                        help="timm model names (timed to forward_features)")
    parser.add_argument("--size", type=int, default=256, help="input side S in pixels")
    parser.add_argument("--batch", type=int, default=1, help="images per forward")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--iters", type=int, default=20, help="timed forwards per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed forwards per model first")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def build_models(args):
    """``{label: module}`` in eval mode on ``args.device``."""
    cfg = get_vertspine_cfg()
    cfg.merge_from_list(args.opts)
    cfg.INPUT.PROMPT_SEG.IMAGE_SIZE = args.size
    models = {}
    for name in args.encoders:
        cfg.MODEL.PROMPT_SEG.ENCODER = name
        models[name] = PROMPT_SEG_ENCODER_REGISTRY.get(name)(cfg).module
    if args.timm:
        import timm

        for name in args.timm:
            try:  # models with position embeddings need the size; convolutional ones refuse it
                model = timm.create_model(name, pretrained=False, num_classes=0,
                                          img_size=args.size)
            except TypeError:
                model = timm.create_model(name, pretrained=False, num_classes=0)
            model.forward = model.forward_features
            models[f"timm:{name}"] = model
    return {label: model.eval().to(args.device) for label, model in models.items()}


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = build_models(args)
    images = torch.rand(args.batch, 3, args.size, args.size, device=device)
    times = {label: [] for label in models}
    shapes = {}
    with torch.inference_mode():
        for step in range(args.warmup + args.iters):
            for label, model in models.items():
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                out = model(images)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if step >= args.warmup:
                    times[label].append(time.perf_counter() - start)
                shapes[label] = tuple(out.shape)
    print(f"device {device}, torch threads {torch.get_num_threads()}, batch {args.batch}, "
          f"input {args.size} px, {args.iters} timed forwards each (after {args.warmup})")
    reference = None
    for label, model in models.items():
        median = statistics.median(times[label]) * 1000
        reference = reference or median
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{label:32s} {params:6.2f} M params  out {shapes[label]}  median {median:8.1f} ms"
              f"  mean {statistics.mean(times[label]) * 1000:8.1f} ms  "
              f"{args.batch / (median / 1000):7.2f} img/s  x{median / reference:.2f}")


if __name__ == "__main__":
    main()
