"""Phantom data for box-prompted segmentation, written in the challenge's npz format on first use.

* ``phantom_promptseg_2d_{train,val,test}``: the phantom lateral spine radiographs
  (:mod:`vertspine.data.phantom`, 256 px), one object per vertebra (labels 1..n top to bottom,
  a later vertebra overwriting an earlier one where their masks touch), ``imgs`` uint8
  (H, W, 3), modality "XRay" (files ``XRay_phantom_<split>_<i>.npz``).
* ``phantom_promptseg_3d_{train,val,test}``: synthetic CT volumes (:mod:`.phantom_volumes`),
  32..48 slices of 96..128 px, spacing about (2.5, 0.8, 0.8) mm (D, H, W), ``imgs`` int16 HU,
  modality "CT" (files ``CT_phantom_<split>_<i>.npz``; ``spacing`` stored as the challenge's
  (x, y, z)). 3D records are one per labelled slice.

Every file also holds ``boxes`` (:func:`.npz_format.prompt_boxes`: box ``i`` prompts label
``i + 1``), so each split folder is an inference input folder too (``segs`` label ``i + 1`` is
then directly comparable with ``gts``).

Each family also registers its modality subset (``phantom_promptseg_2d_train_XRay``, ...).
Files live under ``$VERTSPINE_DATASETS/phantom_promptseg_{2d,3d}``. Generation is deterministic
(case ``i`` of a split from ``default_rng([seed, dims, split, i])``) and atomic: the folder is
written in a temporary folder next to it and renamed into place with a manifest (the phantom
writer's publishing); it is rewritten only when the manifest (generator version + config)
changes. ``python scripts/generate_phantom_promptseg.py`` writes both ahead of time.
"""
import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from ..coco_registration import unregister_dataset
from ..datasets_root import datasets_root
from ..phantom import PhantomConfig, generate_phantom_image
from ..generated_folder import ensure_generated_folder
from ..spine_categories import SPLITS
from .datasets import register_prompt_seg_folder
from .npz_format import prompt_boxes, write_prompt_seg_npz
from .phantom_volumes import generate_phantom_volume

__all__ = ["PHANTOM_PROMPT_SEG_NAMES", "PromptSegPhantomConfig", "ensure_phantom_prompt_seg",
           "register_phantom_prompt_seg"]

# Bump when a change alters any generated array: cached folders are rewritten.
GENERATOR_VERSION = "vertspine-promptseg-phantom-1"
_MODALITY = {2: "XRay", 3: "CT"}
PHANTOM_PROMPT_SEG_NAMES = tuple(f"phantom_promptseg_{d}d_{s}" for d in (2, 3) for s in SPLITS)


@dataclass(frozen=True)
class PromptSegPhantomConfig:
    """Everything that determines the two phantom folders (stored in their manifests).

    Attributes:
        num_2d: cases per split (train, val, test) of the 2D set; test >= 200 keeps the DSC's
            confidence interval tight.
        num_3d: volumes per split (train, val, test) of the 3D set; val holds as many as test
            (about 110 structures), as 8 volumes (34 structures) moved the mean DSC of
            equally good propagation settings by several points; train holds 96 (about 2900
            labelled slices), as 24 left a 3-point gap between training and val DSC.
        image_size: side of the 2D radiographs, px.
        depth_range: (min, max) slices of a volume, inclusive.
        size_range: (min, max) in-plane pixels of a volume (square), inclusive.
        spacing: mm per voxel (D, H, W) before a per-volume jitter of up to +-10 %.
        seed: base seed.
    """

    num_2d: tuple = (400, 50, 200)
    num_3d: tuple = (96, 24, 24)
    image_size: int = 256
    depth_range: tuple = (32, 48)
    size_range: tuple = (96, 128)
    spacing: tuple = (2.5, 0.8, 0.8)
    seed: int = 0

    def __post_init__(self):
        counts = list(self.num_2d) + list(self.num_3d)
        if len(self.num_2d) != 3 or len(self.num_3d) != 3 or min(counts) < 0:
            raise ValueError("num_2d and num_3d are (train, val, test) counts >= 0.")
        if not (16 <= self.depth_range[0] <= self.depth_range[1]
                and 64 <= self.size_range[0] <= self.size_range[1]):
            raise ValueError("Volumes need depth_range from >= 16 slices and size_range from "
                             ">= 64 px, each (min, max) with min <= max.")

    def manifest(self, dims: int) -> Dict[str, Any]:
        """What identifies the ``dims``-D folder, as it reads back from JSON."""
        fields = dataclasses.asdict(self)
        fields.pop("num_3d" if dims == 2 else "num_2d")
        if dims == 2:
            for key in ("depth_range", "size_range", "spacing"):
                fields.pop(key)
        return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, "dims": dims,
                                      "config": fields}))


def _case_path(folder: str, dims: int, split: str, index: int) -> str:
    return os.path.join(folder, split, f"{_MODALITY[dims]}_phantom_{split}_{index:05d}.npz")


def _write_2d(folder: str, cfg: PromptSegPhantomConfig) -> None:
    spine = PhantomConfig(image_height=cfg.image_size, image_width=cfg.image_size,
                          num_train=cfg.num_2d[0], num_val=cfg.num_2d[1], num_test=cfg.num_2d[2],
                          seed=cfg.seed)
    for split, count in zip(SPLITS, cfg.num_2d):
        for index in range(count):
            image, vertebrae, _ = generate_phantom_image(spine, split, index)
            labels = np.zeros(image.shape, np.uint16)
            for label, vertebra in enumerate(vertebrae, start=1):
                labels[vertebra["mask"]] = label
            kept = np.unique(labels)[1:]  # a vertebra hidden by its neighbours loses its label
            labels = np.searchsorted(np.concatenate([[0], kept]), labels).astype(np.uint16)
            write_prompt_seg_npz(_case_path(folder, 2, split, index),
                                 np.repeat(image[..., None], 3, axis=-1), gts=labels,
                                 boxes=prompt_boxes(labels)[1])


def _write_3d(folder: str, cfg: PromptSegPhantomConfig) -> None:
    for split_index, (split, count) in enumerate(zip(SPLITS, cfg.num_3d)):
        for index in range(count):
            rng = np.random.default_rng([cfg.seed, 3, split_index, index])
            depth = int(rng.integers(cfg.depth_range[0], cfg.depth_range[1] + 1))
            size = int(rng.integers(cfg.size_range[0], cfg.size_range[1] + 1))
            in_plane = cfg.spacing[1] * rng.uniform(0.9, 1.1)
            spacing = (cfg.spacing[0] * rng.uniform(0.9, 1.1), in_plane,
                       in_plane * cfg.spacing[2] / cfg.spacing[1])
            spacing = tuple(round(s, 3) for s in spacing)
            volume, labels = generate_phantom_volume(rng, depth, size, spacing)
            write_prompt_seg_npz(_case_path(folder, 3, split, index), volume, gts=labels,
                                 boxes=prompt_boxes(labels)[1], spacing=spacing)


def ensure_phantom_prompt_seg(root: str, dims: int,
                              cfg: Optional[PromptSegPhantomConfig] = None) -> str:
    """Make ``root`` hold the ``dims``-D phantom folder of ``cfg``; nothing when it already does.

    Args:
        root: the folder (``<root>/<split>/*.npz``).
        dims: 2 or 3.
        cfg: parameters; None means ``PromptSegPhantomConfig()``.
    Returns:
        ``root``.
    Raises:
        FileExistsError: ``root`` is a non-empty folder that is not a phantom folder.
    """
    cfg = cfg or PromptSegPhantomConfig()
    write = _write_2d if dims == 2 else _write_3d
    ensure_generated_folder(root, cfg.manifest(dims), lambda staging: write(staging, cfg),
                            what="phantom folder")
    return root


def register_phantom_prompt_seg(root: Optional[str] = None,
                                cfg: Optional[PromptSegPhantomConfig] = None) -> List[str]:
    """(Re-)register ``phantom_promptseg_{2d,3d}_{train,val,test}`` and their modality subsets.

    Lazy: a folder is generated the first time one of its datasets is loaded.

    Args:
        root: the folder holding ``phantom_promptseg_2d`` and ``phantom_promptseg_3d``; None
            means ``$VERTSPINE_DATASETS`` (read now).
        cfg: parameters; None means ``PromptSegPhantomConfig()``.
    Returns:
        every registered name.
    """
    root = root or datasets_root()
    cfg = cfg or PromptSegPhantomConfig()
    names = []
    for dims in (2, 3):
        folder = os.path.join(root, f"phantom_promptseg_{dims}d")
        prepare = functools.partial(ensure_phantom_prompt_seg, folder, dims, cfg)
        for split in SPLITS:
            name = f"phantom_promptseg_{dims}d_{split}"
            for old in (name, f"{name}_{_MODALITY[dims]}"):
                unregister_dataset(old, missing_ok=True)
            names += register_prompt_seg_folder(name, os.path.join(folder, split),
                                                modalities=[_MODALITY[dims]], prepare=prepare)
    return names
