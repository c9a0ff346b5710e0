#!/usr/bin/env python
"""The scale of a distillation's embedding MSE: how much the frozen teacher's image embeddings
vary over a dataset.

Prints, for the teacher of a ``PromptSegDistiller`` config on one dataset, the mean over embedding
elements of the variance over images (the MSE of a student that outputs the dataset's mean
embedding); the evaluator's MSE divided by it is the share of that variance left unexplained.

    python scripts/teacher_embedding_spread.py \
        --config-file configs/prompt_seg/distill_efficientvit_l0_128_phantom_2d.yaml \
        --dataset phantom_promptseg_2d_val
"""
import argparse
from typing import Dict, Iterable, List, Tuple

import vertspine  # noqa: F401 (registers the families before detectron2's imports)
import torch
from detectron2.modeling import build_model

from vertspine.config import get_vertspine_cfg
from vertspine.engine import Trainer


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config-file", required=True, help="a PromptSegDistiller config")
    parser.add_argument("--dataset", required=True, help="a registered dataset name")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args(argv)
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    model = build_model(cfg).eval()
    spread, shape = embedding_spread(model.teacher, Trainer.build_test_loader(cfg, args.dataset),
                                     model.device)
    print(f"{args.dataset}: {shape[0]} images, teacher embeddings {shape[1:]}, "
          f"variance over images (mean over elements) {spread:.4f}")
    return spread


def embedding_spread(encoder: torch.nn.Module, loader: Iterable[List[Dict]],
                     device: torch.device) -> Tuple[float, List[int]]:
    """(mean over elements of the variance over images, [N, C, E, E]) of ``encoder``'s
    embeddings of the loader's images (``image`` [3, S, S] per dict)."""
    embeddings = []
    with torch.no_grad():
        for batch in loader:
            images = torch.stack([x["image"] for x in batch]).to(device)
            embeddings.append(encoder(images).cpu())
    stacked = torch.cat(embeddings)
    return stacked.var(dim=0, unbiased=False).mean().item(), list(stacked.shape)


if __name__ == "__main__":
    main()
