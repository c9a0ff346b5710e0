#!/usr/bin/env python
"""CPU speed of box-prompted segmentation: exported engines vs PyTorch eager, side by side.

    nice python scripts/benchmark_prompt_seg.py --part student --threads 2 --repeats 3
    nice python scripts/benchmark_prompt_seg.py --part sam-encoder --threads 2 --repeats 3

``--part student``: whole cases (preprocessing, encoder, every box decoded, masks merged; 3D
volumes propagated) of a few phantom cases (``phantom_promptseg_{2d,3d}`` test split, generated
into ``--data`` when absent, boxes from their labels) by one model (``--config-file`` and
``KEY VALUE`` overrides, default the EfficientViT-SAM-L0 student at 256 px; ``--weights``
optional: speed does not depend on them) as :class:`BoxPromptPredictor` with the "torch"
(eager), "onnxruntime" and "openvino" engines. Model load (building, exporting to
``--cache-dir``, compiling) is timed apart; per-case time excludes it.

``--part sam-encoder``: segment_anything's ViT-B image encoder at 1024 px (MedSAM's; random
weights), eager vs the same module exported to ONNX Runtime and OpenVINO, on one image.

Every engine runs each case ``--repeats`` times after one warm-up, engines alternating so that a
change of machine load hits all alike; the median is reported, with the ratio eager / engine.
For the student, each case's time is also split into image-encoder calls, box-decoder calls and
the rest (preprocessing, resizing the logits, merging, propagation), as means over the timed
runs.
Not a test; only ``--cache-dir`` and ``--data`` are written.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
import numpy as np  # noqa: E402
import torch  # noqa: E402

ENGINES = ("torch", "onnxruntime", "openvino")
DEFAULT_CONFIG = "configs/prompt_seg/litemedsam_tinyvit_256_phantom_2d.yaml"
STUDENT = ("MODEL.PROMPT_SEG.ENCODER", "efficientvit_sam_l0")  # DAFT's encoder, at 256 px


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("student", "sam-encoder"), required=True)
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, help="student: the model config")
    parser.add_argument("--weights", default="", help="student: checkpoint (default: random)")
    parser.add_argument("--cases-2d", type=int, default=3, help="student: 2D phantom cases")
    parser.add_argument("--cases-3d", type=int, default=1, help="student: 3D phantom volumes")
    parser.add_argument("--data", default="output/benchmark_prompt_seg/data",
                        help="student: folder of the generated phantom cases")
    parser.add_argument("--cache-dir", default="output/benchmark_prompt_seg/engines")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every engine")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case and engine")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help="student: KEY VALUE config overrides (default: " +
                        " ".join(STUDENT) + ")")
    args = parser.parse_args(argv)
    args.opts = args.opts or list(STUDENT)
    return args


def phantom_cases(root: str, count_2d: int, count_3d: int):
    """PromptSegCases with one box per labelled object, from the phantom test splits."""
    from vertspine.data.prompt_seg import (PromptSegCase, PromptSegPhantomConfig,
                                           ensure_phantom_prompt_seg, prompt_boxes,
                                           read_prompt_seg_npz)

    config = PromptSegPhantomConfig(num_2d=(0, 0, count_2d), num_3d=(0, 0, count_3d))
    cases = []
    for dims, count in ((2, count_2d), (3, count_3d)):
        folder = ensure_phantom_prompt_seg(os.path.join(root, f"{dims}d"), dims, config)
        for name in sorted(os.listdir(os.path.join(folder, "test")))[:count]:
            case = read_prompt_seg_npz(os.path.join(folder, "test", name), require_gts=True)
            cases.append(PromptSegCase(case.path, case.imgs, None, prompt_boxes(case.gts)[1],
                                       case.spacing))
    return cases


def timed(run, repeats: int, after_warm_up=None) -> dict:
    """{engine: [seconds] * repeats} of ``run(engine)``, after one warm-up, engines alternating;
    ``after_warm_up()`` is called between the warm-up and the timed runs."""
    for kind in ENGINES:
        run(kind)
    if after_warm_up is not None:
        after_warm_up()
    times = {kind: [] for kind in ENGINES}
    for _ in range(repeats):
        for kind in ENGINES:
            start = time.perf_counter()
            run(kind)
            times[kind].append(time.perf_counter() - start)
    return times


class TimedEngine:
    """An engine that adds up the seconds and the number of its calls."""

    def __init__(self, engine):
        self.engine, self.seconds, self.calls = engine, 0.0, 0

    @property
    def kind(self) -> str:
        return self.engine.kind

    def __call__(self, *inputs):
        start = time.perf_counter()
        outputs = self.engine(*inputs)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return outputs


def report(title: str, times: dict) -> None:
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{title}: " + "; ".join(
        f"{name} {m * 1000:.0f} ms (median of {len(times[name])}, "
        f"x{medians['torch'] / m:.2f} vs eager)" for name, m in medians.items()))


def student(args) -> None:
    from detectron2.modeling import build_model

    from vertspine.config import get_vertspine_cfg, load_config
    from vertspine.modeling.prompt_seg import BoxPromptPredictor, load_prompt_seg_checkpoint

    cfg = load_config(get_vertspine_cfg(), args.config_file, args.opts)
    cfg.MODEL.DEVICE = "cpu"
    cases = phantom_cases(args.data, args.cases_2d, args.cases_3d)
    predictors = {}
    for kind in ENGINES:
        start = time.perf_counter()
        torch.manual_seed(0)
        model = build_model(cfg)
        if args.weights:
            load_prompt_seg_checkpoint(model, args.weights)
        predictor = BoxPromptPredictor.from_model(model, kind, cache_dir=args.cache_dir,
                                                  threads=args.threads)
        predictor.encoder, predictor.decoder = (TimedEngine(predictor.encoder),
                                                TimedEngine(predictor.decoder))
        predictors[kind] = predictor
        print(f"{kind}: model load {time.perf_counter() - start:.1f} s (build, export, compile)")
    print(f"encoder {cfg.MODEL.PROMPT_SEG.ENCODER} at {cfg.INPUT.PROMPT_SEG.IMAGE_SIZE} px, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{args.threads} threads")

    def reset_counters():
        for predictor in predictors.values():
            for engine in (predictor.encoder, predictor.decoder):
                engine.seconds, engine.calls = 0.0, 0

    totals = {kind: 0.0 for kind in ENGINES}
    for case in cases:
        results = {}

        def run(kind):
            results[kind] = predictors[kind].predict(case).segs

        times = timed(run, args.repeats, reset_counters)
        agreement = ", ".join(f"{k} {np.mean(results[k] == results['torch']) * 100:.3f} %"
                              for k in ENGINES[1:])
        report(f"{os.path.basename(case.path)} {case.spatial_shape} {len(case.boxes)} boxes",
               times)
        print(f"  pixels equal to eager: {agreement}")
        runs = args.repeats
        for kind, predictor in predictors.items():
            encoder, decoder = predictor.encoder, predictor.decoder
            rest = statistics.mean(times[kind]) - (encoder.seconds + decoder.seconds) / runs
            print(f"  {kind}: encoder {encoder.seconds / runs:.2f} s ({encoder.calls // runs} "
                  f"calls), decoder {decoder.seconds / runs:.2f} s ({decoder.calls // runs} "
                  f"calls), rest {rest:.2f} s (means per run)")
        for kind in ENGINES:
            totals[kind] += statistics.median(times[kind])
    print("all cases (sum of medians): " + "; ".join(
        f"{k} {totals[k]:.2f} s (x{totals['torch'] / totals[k]:.2f})" for k in ENGINES))


def sam_encoder(args) -> None:
    from segment_anything import sam_model_registry

    from vertspine.layers.engines import build_engine
    from vertspine.layers.sam import SAM_ENCODER_SIGNATURE

    torch.manual_seed(0)
    encoder = sam_model_registry["vit_b"]().image_encoder.eval()
    images = torch.rand(2, 3, 1024, 1024)
    runners = {}
    for kind in ENGINES:
        start = time.perf_counter()
        runners[kind] = build_engine(kind, encoder, (images,), SAM_ENCODER_SIGNATURE,
                                     cache_dir=args.cache_dir, threads=args.threads)
        print(f"{kind}: load {time.perf_counter() - start:.1f} s (export, compile)")
    outputs = {}

    def run(kind):
        outputs[kind] = runners[kind](images[:1])[0]

    report("SAM ViT-B encoder, 1 image at 1024 px", timed(run, args.repeats))
    for kind in ENGINES[1:]:
        print(f"  {kind} max |difference| to eager: "
              f"{(outputs[kind] - outputs['torch']).abs().max().item():.2e}")


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    (student if args.part == "student" else sam_encoder)(args)


if __name__ == "__main__":
    main()
