"""Phantom vertebra segmentation: ``phantom_spine_seg_{train,val,test}`` (vertebra vs background).

The masks are the union of each image's vertebra polygons in the phantom COCO json
(``annotations/vertebrae_{split}.json``), rasterised with pycocotools exactly as the instance
masks are, and written once as 8-bit PNGs (0 background, 255 vertebra) with the images'
filenames under ``<phantom root>/masks/vertebra_{split}/``. A small manifest next to them records
the sha1 of the source json; masks are rewritten only when it changes (e.g. the phantom data was
regenerated). Every file is written atomically (temporary file, then rename).
"""
import functools
import hashlib
import json
import os
from typing import Dict, List, Optional

import numpy as np
from pycocotools import mask as mask_utils

from vertspine.utils.file_io import write_json, write_png

from .coco_registration import unregister_dataset
from .image_mask_folders import register_image_mask_folders
from .phantom import PhantomConfig, ensure_phantom_dataset, phantom_dataset_paths
from .spine_categories import SPLITS

__all__ = ["PHANTOM_SPINE_SEG_NAMES", "rasterize_vertebra_masks", "register_phantom_spine_seg",
           "write_vertebra_masks"]

PHANTOM_SPINE_SEG_NAMES = tuple(f"phantom_spine_seg_{split}" for split in SPLITS)
_MASK_VERSION = 1  # bump when the rasterisation changes


def _mask_paths(root: str, split: str) -> Dict[str, str]:
    folder = os.path.join(root, "masks")
    return {"mask_dir": os.path.join(folder, f"vertebra_{split}"),
            "manifest": os.path.join(folder, f"vertebra_{split}_manifest.json")}


def rasterize_vertebra_masks(coco: Dict) -> Dict[str, np.ndarray]:
    """Union of every annotation's segmentation per image.

    Args:
        coco: a COCO instances dict with ``segmentation`` polygons (or RLEs).
    Returns:
        ``{file_name: uint8 [H, W]}`` with 1 inside any annotation, 0 elsewhere; every image of
        the json is present (all zeros without annotations).
    """
    masks = {image["id"]: np.zeros((image["height"], image["width"]), np.uint8)
             for image in coco["images"]}
    sizes = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
    for ann in coco["annotations"]:
        height, width = sizes[ann["image_id"]]
        rles = mask_utils.frPyObjects(ann["segmentation"], height, width)
        rle = mask_utils.merge(rles) if isinstance(rles, list) else rles
        masks[ann["image_id"]] |= mask_utils.decode(rle).astype(np.uint8)
    return {image["file_name"]: masks[image["id"]] for image in coco["images"]}


def write_vertebra_masks(json_file: str, mask_dir: str, manifest_file: str) -> int:
    """Write the binary vertebra masks of ``json_file`` unless its manifest is current.

    Returns:
        the number of masks written (0 when they were already up to date).
    """
    with open(json_file, "rb") as f:
        raw = f.read()
    manifest = {"source": os.path.basename(json_file), "sha1": hashlib.sha1(raw).hexdigest(),
                "version": _MASK_VERSION}
    if os.path.isfile(manifest_file):
        with open(manifest_file) as f:
            if json.load(f) == manifest:
                return 0
    masks = rasterize_vertebra_masks(json.loads(raw))
    for file_name, mask in masks.items():
        write_png(os.path.join(mask_dir, file_name), mask * 255)
    write_json(manifest_file, manifest, indent=None)
    return len(masks)


def _prepare(root: str, cfg: PhantomConfig, split: str) -> None:
    paths = ensure_phantom_dataset(root, cfg)
    masks = _mask_paths(root, split)
    write_vertebra_masks(paths[split]["vertebrae_json"], masks["mask_dir"], masks["manifest"])


def register_phantom_spine_seg(root: str, cfg: Optional[PhantomConfig] = None) -> List[str]:
    """(Re-)register ``phantom_spine_seg_{train,val,test}`` on the phantom data under ``root``.

    Lazy: the phantom data and the masks are written the first time a split is loaded.

    Returns:
        the registered names.
    """
    cfg = cfg or PhantomConfig()
    paths = phantom_dataset_paths(root)
    for split, name in zip(SPLITS, PHANTOM_SPINE_SEG_NAMES):
        unregister_dataset(name, missing_ok=True)
        register_image_mask_folders(
            name, paths[split]["image_root"], _mask_paths(root, split)["mask_dir"], ["vertebra"],
            mask_values=[0, 255], prepare=functools.partial(_prepare, root, cfg, split))
    return list(PHANTOM_SPINE_SEG_NAMES)
