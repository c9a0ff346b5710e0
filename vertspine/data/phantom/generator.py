"""One phantom radiograph with its vertebra and lesion annotations."""
from typing import Dict, List, Tuple

import numpy as np

from .config import PhantomConfig, split_index
from .lesions import draw_lesion, plan_lesions
from .scene import draw_context, draw_soft_tissue, draw_vertebra, expose, trabecular_texture
from .shapes import Pose, mask_bbox
from .spine import place_run, sample_run, sample_spine
from .vertebra import Part, vertebra_parts

__all__ = ["generate_phantom_image", "image_rng"]


def image_rng(cfg: PhantomConfig, split: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``split``: ``default_rng([seed, split, index])``."""
    return np.random.default_rng([cfg.seed, split_index(split), index])


def generate_phantom_image(
    cfg: PhantomConfig, split: str, index: int
) -> Tuple[np.ndarray, List[Dict], List[Dict]]:
    """Generate image ``index`` of ``split``; the same arguments give identical results.

    Coordinates are image pixels, x right, y down, origin at the top-left corner; boxes are
    XYXY with pixel-edge coordinates (a box around columns 3..5 is x0=3, x1=6).

    Args:
        cfg: dataset parameters (image size, lesion rate, seed, ...).
        split: "train", "val" or "test".
        index: image number within the split (0-based).
    Returns:
        (image, vertebrae, lesions):
        image: uint8 [H, W] grayscale lateral radiograph (anterior to the left).
        vertebrae: one dict per vertebra in view, top to bottom, with ``category_id``
            (VerSe level id, 1..25), ``bbox`` (XYXY, tight around ``mask``), ``mask``
            (bool [H, W]: body plus posterior elements), ``segmentation`` (COCO polygons that
            rasterise exactly to ``mask`` with pycocotools) and ``area`` (mask pixels).
        lesions: one dict per lesion (empty for a normal image) with ``category_id``
            (1..7), ``bbox`` (XYXY), ``segmentation`` (the box as a polygon) and ``area``.
    """
    rng = image_rng(cfg, split, index)
    spine = sample_spine(rng, cfg.l6_probability)
    run = sample_run(rng, cfg, spine)
    plans, deformation = plan_lesions(rng, cfg, spine.levels[run[0] : run[1]])
    view = place_run(rng, cfg, spine, run, deformation)
    texture = trabecular_texture(rng, cfg.size)
    canvas = draw_soft_tissue(rng, cfg.size, view.poses)
    draw_context(rng, canvas, view.poses, view.skull, view.sacrum, texture)
    vertebrae = [_draw_annotated_vertebra(canvas, pose, texture) for pose in view.poses]
    metal = np.zeros(cfg.size, np.float32)
    lesions = [draw_lesion(canvas, metal, view.poses, plan, cfg) for plan in plans]
    return expose(rng, canvas, metal, view.field), vertebrae, lesions


def _draw_annotated_vertebra(canvas: np.ndarray, pose: Pose, texture: np.ndarray) -> Dict:
    """Draw the vertebra at ``pose`` and return its annotation (see generate_phantom_image)."""
    parts = [Part(part.kind, np.round(part.polygon, 2)) for part in vertebra_parts(pose)]
    mask = draw_vertebra(canvas, parts, pose.depth, texture)
    return {
        "category_id": pose.level + 1,
        "bbox": mask_bbox(mask),
        "mask": mask,
        "segmentation": [part.polygon.ravel().tolist() for part in parts],
        "area": float(mask.sum()),
    }
