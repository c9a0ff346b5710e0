"""Helpers of the EfficientViT-SAM and distillation tests: configs and the official fixtures.

``data/efficientvit_sam_l0_keys.txt`` and ``data/efficientvit_sam_tiny_official.pt`` were made
with the official code (mit-han-lab/efficientvit@3ecf6f86) by
``data/make_efficientvit_fixtures.py``:
the key and shape of every tensor of ``create_sam_model("l0")``, and a tiny official image
encoder (widths [8, 8, 8, 16, 32], depths 1, neck 16 wide and 1 deep, norm eps 1e-6, random
weights and BatchNorm statistics, stored in float16) with its output on a seeded 256 px input.
"""
import contextlib
import functools
import os
from typing import Dict, Iterator, List, Tuple

import torch
from detectron2.config import CfgNode as CN

from vertspine.config import get_vertspine_cfg

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@contextlib.contextmanager
def single_torch_thread() -> Iterator[None]:
    """torch on one thread for the block (tiny convolutions on a shared, loaded CPU are several
    times slower with more)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def prompt_seg_cfg(image_size: int = 32) -> CN:
    """The vertspine config with the tiny EfficientViT encoder at ``image_size``.

    ``INPUT.PROMPT_SEG.IMAGE_SIZE`` and ``MODEL.PROMPT_SEG.ENCODER`` belong to the family's data
    and model configs; they are added here only when this checkout lacks them.
    """
    cfg = get_vertspine_cfg()
    if "PROMPT_SEG" not in cfg.INPUT:
        cfg.INPUT.PROMPT_SEG = CN({"IMAGE_SIZE": 256})
    if "ENCODER" not in cfg.MODEL.PROMPT_SEG:
        cfg.MODEL.PROMPT_SEG.ENCODER = ""
    cfg.INPUT.PROMPT_SEG.IMAGE_SIZE = image_size
    cfg.MODEL.PROMPT_SEG.ENCODER = "efficientvit_sam_tiny"
    cfg.MODEL.DEVICE = "cpu"
    return cfg


@functools.lru_cache(maxsize=None)
def official_tiny() -> Dict:
    """The tiny official encoder (read once; not to be modified): ``image_encoder`` (its state
    dict, ``image_encoder.*`` keys, as float32), ``input_sum``, ``output_every_16th``
    [1, 256, 4, 4], ``output_sum``, ``output_abs_sum``; its input is
    :func:`official_tiny_input`."""
    fixture = torch.load(os.path.join(DATA, "efficientvit_sam_tiny_official.pt"))
    fixture["image_encoder"] = {key: value.float() if value.is_floating_point() else value
                                for key, value in fixture["image_encoder"].items()}
    return fixture


def official_tiny_input() -> torch.Tensor:
    """[1, 3, 256, 256] in [0, 1], seeded: the input of the official tiny encoder's output."""
    return torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))


def official_l0_listing() -> List[Tuple[str, Tuple[int, ...]]]:
    """(key, shape) of every tensor of the official EfficientViT-SAM-L0 state dict."""
    with open(os.path.join(DATA, "efficientvit_sam_l0_keys.txt")) as f:
        rows = [line.split() for line in f if line.strip() and not line.startswith("#")]
    return [(key, () if shape == "-" else tuple(int(n) for n in shape.split("x")))
            for key, shape in rows]
