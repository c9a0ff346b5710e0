#!/usr/bin/env python
"""Sliding-window vessel inference speed: vesselFM's own settings beside ours, in one run.

    OMP_NUM_THREADS=2 nice python scripts/benchmark_vessels.py --size 96 --roi 64 --threads 2
    python scripts/benchmark_vessels.py --size 160 --roi 128 --device cuda      # vesselFM's scale

Every setting runs the same ``VesselSegmentor`` inference (``MODEL.SEGMENTOR.SLIDING_WINDOW`` +
``MODEL.VESSEL.INFERENCE``, no test-time augmentation) on one volume of ``--size``^3 voxels (a
smooth random field, intensity-scaled to [0, 1]) with the same weights (random, seed 0):

* ``vesselfm``: uniform ("constant") blending, overlap 0.5, 16 windows per call (vesselFM's
  ``configs/inference.yaml``), float32;
* ``ours``: gaussian blending (sigma 0.125 ROI), overlap 0.5, ``--batch`` windows per call,
  float32, and the same with ``MODEL.VESSEL.INFERENCE.AUTOCAST_BF16`` (``ours_bf16``).

Networks: vesselFM's DynUNet (filters 32/64/128/256/320/320, 6 levels, residual blocks) and,
with ``--small``, a 4-level 16/32/64/128 one. vesselFM's window is 128^3; on a CPU of 1-2 cores
use a smaller ``--roi`` (the printed table names the sizes). Prints one row per network and
setting: wall seconds and voxels/s (median of ``--repeats``, after a one-window warm-up), the
CPU seconds of the process (the fairer figure on a CPU shared with other jobs) and voxels per
CPU second, and the agreement of its mask and probabilities with the ``vesselfm`` row's.
"""
import argparse
import statistics
import time

import torch

import vertspine  # noqa: F401  (first: detectron2 without compiled ops; registrations)
from detectron2.modeling import build_model
from vertspine.config import get_vertspine_cfg

NETWORKS = {  # name: (filters, strides)
    "vesselfm": ([32, 64, 128, 256, 320, 320], [1, 2, 2, 2, 2, 2]),
    "small": ([16, 32, 64, 128], [1, 2, 2, 2]),
}
# name: (blending, overlap, windows per call or None for --batch, bfloat16 autocast)
SETTINGS = {
    "vesselfm": ("constant", 0.5, 16, False),
    "ours": ("gaussian", 0.5, None, False),
    "ours_bf16": ("gaussian", 0.5, None, True),
}


def build_vessel_model(network: str, setting: str, roi: int, batch: int, device: str):
    """A VesselSegmentor of ``network`` with the sliding window of ``setting``, seed-0 weights."""
    filters, strides = NETWORKS[network]
    mode, overlap, windows, bf16 = SETTINGS[setting]
    cfg = get_vertspine_cfg()
    cfg.merge_from_list([
        "MODEL.META_ARCHITECTURE", "VesselSegmentor", "MODEL.DEVICE", device,
        "MODEL.PIXEL_MEAN", "[0.0]", "MODEL.PIXEL_STD", "[1.0]",
        "MODEL.SEGMENTOR.SPATIAL_DIMS", "3", "MODEL.SEGMENTOR.NETWORK", "dynunet",
        "MODEL.SEGMENTOR.IN_CHANNELS", "1", "MODEL.SEGMENTOR.ACTIVATION", "sigmoid",
        "MODEL.SEGMENTOR.DYNUNET.FILTERS", str(filters),
        "MODEL.SEGMENTOR.DYNUNET.KERNEL_SIZES", str([3] * len(filters)),
        "MODEL.SEGMENTOR.DYNUNET.STRIDES", str(strides),
        "MODEL.SEGMENTOR.SLIDING_WINDOW.ROI_SIZE", str([roi] * 3),
        "MODEL.SEGMENTOR.SLIDING_WINDOW.OVERLAP", str(overlap),
        "MODEL.SEGMENTOR.SLIDING_WINDOW.BATCH_SIZE", str(windows or batch),
        "MODEL.SEGMENTOR.SLIDING_WINDOW.MODE", mode,
        "MODEL.VESSEL.INFERENCE.AUTOCAST_BF16", str(bf16),
    ])
    torch.manual_seed(0)
    return build_model(cfg).eval()


def smooth_volume(size: int, seed: int = 0) -> torch.Tensor:
    """[1, size, size, size] float32 in [0, 1]: uniform noise blurred by three 5-voxel means."""
    generator = torch.Generator().manual_seed(seed)
    volume = torch.rand(1, 1, size, size, size, generator=generator)
    for _ in range(3):
        volume = torch.nn.functional.avg_pool3d(volume, 5, stride=1, padding=2,
                                                count_include_pad=False)
    volume = (volume - volume.min()) / (volume.max() - volume.min())
    return volume[0]


def run(model, volume: torch.Tensor, roi: int, repeats: int):
    """(median wall seconds, median CPU seconds of this process, last output) of ``repeats``
    inferences of ``volume``, after one warm-up inference of a single window."""
    device_type = model.device.type
    with torch.no_grad():
        model([{"image": volume[:, :roi, :roi, :roi], "spacing": (1.0, 1.0, 1.0)}])
    walls, cpus, output = [], [], None
    for _ in range(repeats):
        if device_type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.no_grad():
            output = model([{"image": volume, "spacing": (1.0, 1.0, 1.0)}])[0]
        if device_type == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=96, help="volume side in voxels")
    parser.add_argument("--roi", type=int, default=64, help="window side (vesselFM: 128)")
    parser.add_argument("--batch", type=int, default=4, help="our windows per call")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per setting")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--small", action="store_true", help="also the small network")
    args = parser.parse_args(argv)
    if args.roi < 64 or args.roi % 32:
        parser.error(f"--roi {args.roi}: vesselFM's network halves a window 5 times and needs a "
                     "multiple of 32 of at least 64 (a 2^3 bottleneck for instance norm).")
    if args.threads:
        torch.set_num_threads(args.threads)
    volume = smooth_volume(args.size)
    voxels = args.size ** 3
    networks = ["vesselfm"] + (["small"] if args.small else [])
    print(f"volume {args.size}^3, window {args.roi}^3, device {args.device}, "
          f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'network':<9} {'setting':<10} {'blend':<9} {'batch':>5} {'dtype':<9} "
          f"{'wall s':>8} {'voxels/s':>10} {'CPU s':>8} {'vox/CPU-s':>10} "
          f"{'mask Dice vs vesselfm':>22} {'max |dp|':>9}")
    for network in networks:
        reference = None
        for setting, (mode, _, windows, bf16) in SETTINGS.items():
            model = build_vessel_model(network, setting, args.roi, args.batch, args.device)
            wall, cpu, output = run(model, volume, args.roi, args.repeats)
            probability, mask = output["sem_seg"][1].float().cpu(), output["vessel_mask"].bool()
            if reference is None:
                reference = probability, mask
            overlap = 2.0 * (mask & reference[1]).sum() / max(1, int(mask.sum() + reference[1].sum()))
            print(f"{network:<9} {setting:<10} {mode:<9} {windows or args.batch:>5} "
                  f"{'bfloat16' if bf16 else 'float32':<9} {wall:>8.2f} {voxels / wall:>10.0f} "
                  f"{cpu:>8.2f} {voxels / cpu:>10.0f} "
                  f"{float(overlap):>22.4f} {float((probability - reference[0]).abs().max()):>9.4f}",
                  flush=True)


if __name__ == "__main__":
    main()
