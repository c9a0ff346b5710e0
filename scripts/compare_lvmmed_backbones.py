#!/usr/bin/env python
"""Compare encoder initialisations over LVM-Med's downstream tasks in one table.

For each backbone (ResNet-50, ViT-B) and each initialisation (random, and a checkpoint in the
backbone's official key layout: a torchvision ResNet-50 file such as ``lvmmed_resnet.torch`` or
torchvision's ImageNet weights; a SAM-image-encoder ViT-B file such as ``lvmmed_vit.pth`` or a
full SAM checkpoint), train and evaluate each task with vertspine's Trainer, in this process:

- ``probe``: linear evaluation (frozen encoder, one FC) on an image-level classification dataset;
- ``finetune``: fine-tuning (encoder and one FC);
- ``segmentation``: U-Net (ResNet-50) or Semantic-FPN on the simple feature pyramid (ViT-B).

Metrics are those of the final model on the config's ``DATASETS.TEST`` (AUROC / accuracy in
percent; per-image Dice / IoU in percent). The table is rewritten (atomically) after every run:
``<output>/comparison.md`` and ``comparison.csv``; each run keeps its folder (config, metrics).

Real weights, on a GPU machine::

    python scripts/compare_lvmmed_backbones.py --output output/lvmmed/compare_real \\
        --resnet-checkpoint weights/lvmmed/lvmmed_resnet.torch \\
        --vit-checkpoint weights/lvmmed/lvmmed_vit.pth --iters 2000 --device cuda \\
        --opts INPUT.MIN_SIZE_TRAIN "(224,)" INPUT.MIN_SIZE_TEST 224 SOLVER.IMS_PER_BATCH 32

A demonstration without weights (``--make-demo-checkpoints DIR`` writes RANDOM weights in the
two official layouts; rows are labelled DEMO)::

    python scripts/compare_lvmmed_backbones.py \\
        --make-demo-checkpoints output/lvmmed/demo_checkpoints \\
        --output output/lvmmed/compare_demo --iters 20

SAM's own ViT-B encoder for comparison: ``--vit-checkpoint sam_vit_b_01ec64.pth --vit-opts
MODEL.LVMMED.VIT.USE_ABS_POS True`` (its ``image_encoder.*`` keys are taken, the rest dropped).
ImageNet ResNet-50: ``--resnet-checkpoint resnet50-0676ba61.pth`` (torchvision's file, same layout).
"""
import argparse
import csv
import io
import json
import logging
import os
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vertspine  # noqa: E402,F401  (first: detectron2 without compiled ops; registrations)
import torch  # noqa: E402
import torchvision  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402
from fvcore.common.config import CfgNode  # noqa: E402

from vertspine.config import get_vertspine_cfg  # noqa: E402
from vertspine.data import (  # noqa: E402
    register_datasets_from_config,
    register_image_folders_from_config,
)
from vertspine.engine import Trainer  # noqa: E402
from vertspine.utils.file_io import atomic_write  # noqa: E402
from vertspine.modeling.lvmmed import LVMMedViT  # noqa: E402

logger = logging.getLogger("vertspine.compare_lvmmed")

BACKBONES = {"resnet": ("ResNet-50", "torchvision_resnet50"), "vit": ("ViT-B", "sam_vit_b")}
TASKS = ("probe", "finetune", "segmentation")
DEFAULT_CONFIGS = {
    ("resnet", "probe"): "configs/lvmmed/probe_1fc_lvmmed_R_50_phantom_abnormal.yaml",
    ("resnet", "finetune"): "configs/lvmmed/finetune_1fc_lvmmed_R_50_phantom_abnormal.yaml",
    ("resnet", "segmentation"): "configs/lvmmed/unet_lvmmed_R_50_phantom_spine_seg.yaml",
    ("vit", "probe"): "configs/lvmmed/probe_1fc_lvmmed_ViT_B_phantom_abnormal.yaml",
    ("vit", "finetune"): "configs/lvmmed/finetune_1fc_lvmmed_ViT_B_phantom_abnormal.yaml",
    ("vit", "segmentation"): "configs/lvmmed/semfpn_lvmmed_ViT_B_phantom_spine_seg.yaml",
}
DEMO_FILES = {"resnet": "DEMO_RANDOM_resnet50_torchvision_layout.torch",
              "vit": "DEMO_RANDOM_vit_sam_encoder_layout.pth"}
COLUMNS = ["backbone", "init", "checkpoint", "layout", "task", "config", "iters", "AUROC",
           "accuracy", "Dice", "IoU", "keys_loaded", "seconds"]


def _base_cfg(config: str, opts: List[str]) -> CfgNode:
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(config)
    cfg.merge_from_list(opts)
    return cfg


def make_demo_checkpoints(folder: str, backbones: List[str], vit_config: str,
                          vit_opts: List[str], seed: int = 0) -> Dict[str, str]:
    """Write random weights in the official layouts (torchvision ResNet-50; SAM image encoder,
    sizes from ``vit_config`` + ``vit_opts``, neck included, no pos_embed) and a README.

    Returns:
        backbone key -> file written.
    """
    paths = {}
    torch.manual_seed(seed)
    if "resnet" in backbones:
        paths["resnet"] = os.path.join(folder, DEMO_FILES["resnet"])
        with atomic_write(paths["resnet"], "wb") as f:
            torch.save(torchvision.models.resnet50(weights=None).state_dict(), f)
    if "vit" in backbones:
        node = _base_cfg(vit_config, vit_opts).MODEL.LVMMED.VIT
        vit = LVMMedViT(img_size=node.IMG_SIZE, patch_size=node.PATCH_SIZE,
                        embed_dim=node.EMBED_DIM, depth=node.DEPTH, num_heads=node.NUM_HEADS,
                        mlp_ratio=node.MLP_RATIO, window_size=node.WINDOW_SIZE,
                        global_attn_indexes=node.GLOBAL_ATTN_INDEXES, use_abs_pos=False,
                        use_rel_pos=True, use_neck=True, neck_channels=node.NECK_CHANNELS)
        paths["vit"] = os.path.join(folder, DEMO_FILES["vit"])
        with atomic_write(paths["vit"], "wb") as f:
            torch.save(vit.encoder.state_dict(), f)
    with atomic_write(os.path.join(folder, "README.txt"), "w") as f:
        f.write("DEMO checkpoints written by scripts/compare_lvmmed_backbones.py: RANDOM weights "
                f"(seed {seed}) in the official key layouts (torchvision ResNet-50; SAM image "
                "encoder without pos_embed). They are NOT LVM-Med weights and only exercise the "
                "conversion and loading path.\n")
    return paths


def _find_report(model: torch.nn.Module):
    for module in model.modules():
        for name in ("lvmmed_report", "encoder_report"):  # LVM-Med backbones; the smp U-Net
            if getattr(module, name, None) is not None:
                return getattr(module, name)
    return None


def run_one(config: str, opts: List[str], output_dir: str) -> Dict[str, object]:
    """Train + evaluate one configuration in this process; returns its metrics and load report."""
    cfg = _base_cfg(config, [*opts, "OUTPUT_DIR", output_dir])
    cfg.freeze()
    register_datasets_from_config(cfg)
    register_image_folders_from_config(cfg)
    with atomic_write(os.path.join(output_dir, "config.yaml"), "w") as f:
        f.write(cfg.dump())
    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(output_dir, "inference", "evaluation_results.json")) as f:
        results = json.load(f)["results"]
    report = _find_report(trainer.model)
    row = {"iters": cfg.SOLVER.MAX_ITER, "seconds": round(time.time() - start, 1),
           "keys_loaded": len(report.loaded) if report is not None else ""}
    classification = results.get("classification", {})
    accuracy = next((v for k, v in classification.items() if k.startswith("accuracy")
                     and "_ci_" not in k), "")
    row.update({"AUROC": classification.get("AUROC", ""), "accuracy": accuracy})
    row.update({k: results.get("sem_seg", {}).get(k, "") for k in ("Dice", "IoU")})
    return row


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_table(rows: List[Dict[str, object]], output: str, note: str) -> None:
    """comparison.csv and comparison.md under ``output`` (each written atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({k: _fmt(row.get(k, "")) for k in COLUMNS} for row in rows)
    with atomic_write(os.path.join(output, "comparison.csv"), "w") as f:
        f.write(buffer.getvalue())
    lines = ["# LVM-Med backbone comparison", "", note, "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in COLUMNS) + " |" for row in rows]
    with atomic_write(os.path.join(output, "comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="output/lvmmed/compare", help="table and run folders")
    parser.add_argument("--resnet-checkpoint", default="", help="torchvision-layout ResNet-50 file")
    parser.add_argument("--vit-checkpoint", default="", help="SAM-encoder-layout ViT-B file")
    parser.add_argument("--make-demo-checkpoints", metavar="DIR", default="",
                        help="write RANDOM weights in both layouts to DIR and use them where no "
                             "checkpoint is given (rows labelled DEMO)")
    parser.add_argument("--backbones", default="resnet,vit", help="comma list of resnet, vit")
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="comma list of " + ", ".join(TASKS))
    parser.add_argument("--iters", type=int, default=0, help="SOLVER.MAX_ITER (0 = the config's)")
    parser.add_argument("--device", default="cpu", help="MODEL.DEVICE: cpu or cuda")
    for (backbone, task), path in DEFAULT_CONFIGS.items():
        parser.add_argument(f"--{backbone}-{task}-config", default=path)
    parser.add_argument("--classification-datasets", nargs=2, metavar=("TRAIN", "TEST"),
                        help="registered datasets for probe / finetune (default: the configs')")
    parser.add_argument("--segmentation-datasets", nargs=2, metavar=("TRAIN", "TEST"),
                        help="registered datasets for segmentation (default: the configs')")
    parser.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every run")
    parser.add_argument("--resnet-opts", nargs="*", default=[], help="overrides for ResNet runs")
    parser.add_argument("--vit-opts", nargs="*", default=[], help="overrides for ViT runs")
    return parser


def main(argv: Optional[List[str]] = None) -> List[Dict[str, object]]:
    args = build_parser().parse_args(argv)
    setup_logger(name="detectron2")
    setup_logger(name="vertspine")
    backbones = [b for b in args.backbones.split(",") if b]
    tasks = [t for t in args.tasks.split(",") if t]
    for value, known, flag in ((backbones, BACKBONES, "--backbones"), (tasks, TASKS, "--tasks")):
        if not value or set(value) - set(known):
            raise SystemExit(f"{flag} must be a comma list of {', '.join(known)}; got {value}.")
    checkpoints = {"resnet": args.resnet_checkpoint, "vit": args.vit_checkpoint}
    demo = {}
    if args.make_demo_checkpoints:
        missing = [b for b in backbones if not checkpoints[b]]
        demo = make_demo_checkpoints(args.make_demo_checkpoints, missing,
                                     args.vit_probe_config, [*args.opts, *args.vit_opts])
        checkpoints.update(demo)
    rows = []
    note = (f"Final-model metrics on each config's DATASETS.TEST (percent); device {args.device}. "
            "accuracy: on a validation split, at the threshold Youden's J picks on that same "
            "split (optimistic; see vertspine.evaluation.classification). "
            + ("DEMO rows load RANDOM weights written by --make-demo-checkpoints (not LVM-Med "
               "weights): they test the plumbing, not the representation." if demo else ""))
    for backbone in backbones:
        name, layout = BACKBONES[backbone]
        inits = [("random", "")]
        if checkpoints[backbone]:
            inits.append(("checkpoint", checkpoints[backbone]))
        for init, path in inits:
            for task in tasks:
                config = getattr(args, f"{backbone}_{task}_config")
                datasets = (args.segmentation_datasets if task == "segmentation"
                            else args.classification_datasets)
                # the U-Net (segmentation family's Segmentor) has its own encoder-weights key
                weights_key = ("MODEL.SEGMENTOR.SMP_UNET.ENCODER_WEIGHTS"
                               if _base_cfg(config, []).MODEL.META_ARCHITECTURE == "Segmentor"
                               else "MODEL.LVMMED.ENCODER_WEIGHTS")
                opts = [*args.opts, *(args.resnet_opts if backbone == "resnet" else args.vit_opts),
                        "MODEL.DEVICE", args.device, weights_key, path,
                        "MODEL.LVMMED.WEIGHTS_LAYOUT", layout, "TEST.EVAL_PERIOD", "0",
                        "TEST.BEST_CHECKPOINT_METRIC", "", "DATALOADER.NUM_WORKERS", "0"]
                if args.iters:
                    opts += ["SOLVER.MAX_ITER", str(args.iters),
                             "SOLVER.CHECKPOINT_PERIOD", str(10 ** 9)]
                if datasets:
                    opts += ["DATASETS.TRAIN", repr((datasets[0],)),
                             "DATASETS.TEST", repr((datasets[1],))]
                run_dir = os.path.join(args.output, f"{backbone}_{init}_{task}")
                is_demo = backbone in demo and init == "checkpoint"
                label = "checkpoint (DEMO random weights)" if is_demo else init
                logger.info("Run %s: %s %s with %s", run_dir, name, task, path or "random init")
                row = run_one(config, opts, run_dir)
                row.update({"backbone": name, "init": label, "checkpoint": path or "-",
                            "layout": layout if path else "-", "task": task,
                            "config": os.path.basename(config)})
                rows.append(row)
                write_table(rows, args.output, note)
    logger.info("Table: %s", os.path.join(args.output, "comparison.md"))
    return rows


if __name__ == "__main__":
    main()
