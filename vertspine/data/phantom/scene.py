"""Everything drawn on a phantom radiograph except the lesions, and the final exposure.

Drawing is additive on a float "density" canvas (as X-ray attenuation superimposes), in the
image pixel frame ((x, y), y down, origin top-left). Layers, in order: soft tissue with
regional cues (airway in front of the neck, dark lungs in front of the thoracic spine, dense
abdomen with bowel gas in front of the lumbar spine) and dark foramina; ribs (oblique bands
behind thoracic vertebrae); skull base, mandible and clivus above C1; iliac wings and the
sacrum below the last lumbar; then the vertebrae (textured bodies, bright cortical rims,
fainter posterior elements). :func:`expose` blurs, maps density to grey levels with random
contrast, adds metal (saturated), collimates outside the field and adds noise.
"""
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .shapes import Pose, band, chaikin, ellipse, quad, rasterize, rotation
from .vertebra import ARCH, BODY, POSTERIOR, Part, foramen, region

__all__ = ["draw_context", "draw_soft_tissue", "draw_vertebra", "expose", "trabecular_texture"]

_FILL: Dict[str, float] = {BODY: 0.34, POSTERIOR: 0.22, ARCH: 0.05}
_RIM = 0.22
_TEXTURE = 0.07
_METAL = 1.15  # exposure value of metal: saturates whatever the contrast and noise
_T11 = 17  # level index of T11
_REGION_TISSUE: Dict[str, Tuple[Tuple[float, float, float], ...]] = {
    # (u0, u1, value) bands in body depths, in front of (u < 0) or behind the vertebra
    "cervical": ((-1.5, -0.95, -0.09),),
    "thoracic": ((-4.0, -0.65, -0.08), (0.75, 2.5, -0.04)),
    "lumbar": ((-4.0, 4.0, 0.05),),
}


def trabecular_texture(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    """Band-pass noise (unit std) that reads as cancellous bone inside vertebral bodies."""
    noise = rng.normal(size=shape).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 0.7) - cv2.GaussianBlur(noise, (0, 0), 2.0)
    return texture / (texture.std() + 1e-6)


def draw_soft_tissue(
    rng: np.random.Generator, shape: Tuple[int, int], poses: Sequence[Pose]
) -> np.ndarray:
    """The soft-tissue canvas: smooth random density plus regional cues and dark foramina."""
    height, width = shape
    coarse = rng.normal(0.0, 0.04, size=(4, 4)).astype(np.float32)
    canvas = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    canvas += np.float32(rng.uniform(0.16, 0.26))
    canvas += np.linspace(0.0, rng.uniform(-0.05, 0.05), width, dtype=np.float32)[None, :]
    regional = np.zeros(shape, np.float32)
    for pose in poses:
        d, half = pose.depth, pose.height / 2 + pose.gap
        for u0, u1, value in _REGION_TISSUE[region(pose.level)]:
            regional[rasterize([pose.to_frame(quad(u0 * d, u1 * d, -half, half))], *shape)] = value
        if region(pose.level) == "lumbar" and rng.random() < 0.6:  # bowel gas
            gas = (-rng.uniform(1.3, 3.0) * d, rng.uniform(-0.5, 0.5) * pose.height)
            bubble = ellipse(gas, [rng.uniform(0.2, 0.5) * d] * 2)
            regional[rasterize([pose.to_frame(bubble)], *shape)] = -0.07
    sigma = 0.5 * float(np.mean([pose.depth for pose in poses]))
    canvas += cv2.GaussianBlur(regional, (0, 0), sigma)
    foramina = [pose.to_frame(ellipse(*foramen(pose))) for pose in poses[:-1] if pose.level > 0]
    canvas -= 0.07 * cv2.GaussianBlur(rasterize(foramina, *shape).astype(np.float32), (0, 0), 1.0)
    return canvas


def draw_context(
    rng: np.random.Generator,
    canvas: np.ndarray,
    poses: Sequence[Pose],
    skull: bool,
    sacrum: bool,
    texture: np.ndarray,
) -> None:
    """Add ribs behind thoracic vertebrae, the skull base above C1, the pelvis below L5/L6.

    Args:
        rng: the image's generator (draws the lumbosacral angle).
        canvas: float density [H, W], modified in place.
        poses: the vertebrae in view, image pixels, top to bottom.
        skull: draw the skull base above the first vertebra (C1).
        sacrum: draw the sacrum and iliac wings below the last vertebra.
        texture: trabecular texture [H, W] for the sacrum.
    """
    for pose in poses:
        if region(pose.level) == "thoracic":
            _draw_ribs(canvas, pose)
    if skull:
        _draw_skull(canvas, poses[0])
    if sacrum:
        _draw_sacrum(canvas, _sacral_pose(rng, poses[-1]), texture)


def draw_vertebra(
    canvas: np.ndarray, parts: Sequence[Part], depth: float, texture: np.ndarray
) -> np.ndarray:
    """Add one vertebra (filled parts plus cortical rim) to ``canvas``; return its bool mask.

    Args:
        canvas: float density [H, W], modified in place.
        parts: the vertebra's parts, polygons in image pixels.
        depth: its body depth in pixels (sets the cortical rim thickness).
        texture: trabecular texture [H, W] modulating the body fill.
    """
    shape = canvas.shape
    fill = np.zeros(shape, np.float32)
    for kind, value in _FILL.items():
        part_mask = rasterize([part.polygon for part in parts if part.kind == kind], *shape)
        level = value + _TEXTURE * texture if kind == BODY else value
        fill = np.where(part_mask, np.maximum(fill, level), fill)
    mask = rasterize([part.polygon for part in parts], *shape)
    canvas += fill + _RIM * _rim(mask, max(1, int(round(0.06 * depth))))
    return mask


def expose(
    rng: np.random.Generator, canvas: np.ndarray, metal: np.ndarray, field: Tuple[int, int]
) -> np.ndarray:
    """Turn the density canvas into an 8-bit radiograph.

    Args:
        rng: the image's generator (contrast, blur and noise are random).
        canvas: float density [H, W].
        metal: float metal coverage in [0, 1] [H, W]; shown saturated (255).
        field: (top, bottom) rows of the exposed field; other rows are collimated (dark).
    Returns:
        uint8 [H, W].
    """
    sigma = rng.uniform(0.35, 0.9) * canvas.shape[0] / 256
    canvas = cv2.GaussianBlur(canvas, (0, 0), sigma)
    metal = cv2.GaussianBlur(metal, (0, 0), sigma)
    k = rng.uniform(1.5, 2.5)
    response = np.minimum((1 - np.exp(-k * np.maximum(canvas, 0))) / (1 - np.exp(-k * 1.1)), 1.0)
    image = rng.uniform(0.02, 0.1) + rng.uniform(0.66, 0.8) * response
    image += (_METAL - image) * metal
    top, bottom = field
    shutter = rng.uniform(0.01, 0.05)
    image[:top], image[bottom:] = shutter, shutter
    image += rng.normal(0.0, rng.uniform(0.006, 0.025), size=image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _rim(mask: np.ndarray, thickness: int) -> np.ndarray:
    """The inner boundary band of ``mask``, ``thickness`` pixels wide (float 0/1)."""
    inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=thickness)
    return (mask & ~inner.astype(bool)).astype(np.float32)


def _add(canvas: np.ndarray, polygons: List[np.ndarray], value: float) -> None:
    """Add ``value`` inside the union of ``polygons`` (image pixels)."""
    canvas[rasterize(polygons, *canvas.shape)] += value


def _draw_ribs(canvas: np.ndarray, pose: Pose) -> None:
    """Two superimposed rib shadows (left and right) crossing behind a thoracic vertebra."""
    d, h = pose.depth, pose.height
    path = np.array(
        [[2.3, -1.1], [1.6, -0.6], [0.9, -0.2], [0.45, 0.15], [-0.5, 0.6], [-1.8, 1.3], [-3.2, 2.2]]
    )
    path = path[:5] if pose.level >= _T11 else path  # T11, T12: short floating ribs
    for shift, value in (((0.0, 0.0), 0.05), ((0.12, 0.18), 0.04)):
        local = (path + shift) * [d, h]
        for width, layer in ((0.32 * h, value), (0.14 * h, -0.45 * value)):
            _add(canvas, [pose.to_frame(band(local, width))], layer)


def _draw_skull(canvas: np.ndarray, atlas: Pose) -> None:
    """Occipital bone (a thick-rimmed ellipse), clivus, mastoid and mandible above C1."""
    d = atlas.depth
    cranium = ellipse((0.6 * d, -3.3 * d), (3.2 * d, 2.6 * d), 48)
    _add(canvas, [atlas.to_frame(cranium)], 0.28)
    _add(canvas, [atlas.to_frame(ellipse((0.6 * d, -3.3 * d), (2.85 * d, 2.25 * d), 48))], -0.12)
    clivus = np.array([[-0.15, -0.75], [-1.3, -2.8]]) * d
    _add(canvas, [atlas.to_frame(band(clivus, 0.45 * d))], 0.22)
    _add(canvas, [atlas.to_frame(ellipse((0.35 * d, -1.1 * d), (0.45 * d, 0.5 * d)))], 0.12)
    mandible = np.array([[-1.5, -2.6], [-1.6, -0.6], [-1.4, 1.2], [-2.6, 1.6], [-4.0, 1.8]]) * d
    _add(canvas, [atlas.to_frame(band(mandible, 0.55 * d))], 0.16)


def _sacral_pose(rng: np.random.Generator, last: Pose) -> Pose:
    """The pose of S1 (level -1: not annotated) below the last lumbar, at the lumbosacral angle."""
    angle = last.angle + np.deg2rad(rng.uniform(12.0, 30.0))
    s1_height = 0.9 * last.height
    center = last.to_frame(np.array([[0.0, last.height / 2 + last.gap / 2]]))[0]
    center = center + rotation(angle)[:, 1] * (last.gap + s1_height) / 2
    return Pose(-1, center, angle, last.depth, s1_height, s1_height, 0.0)


def _draw_sacrum(canvas: np.ndarray, s1: Pose, texture: np.ndarray) -> None:
    """Iliac wings (faint, with a crest line) and the sacrum (a large bright wedge)."""
    d, h = s1.depth, s1.height
    _add(canvas, [s1.to_frame(ellipse((0.6 * d, 0.4 * h), (1.7 * d, 1.4 * d), 48))], 0.07)
    crest = np.array([[-0.9, -0.7], [0.0, -1.0], [1.0, -0.9], [1.9, -0.4]]) * d
    _add(canvas, [s1.to_frame(band(crest, 0.12 * d))], 0.08)
    outline = np.array([[-0.5, -0.5], [0.5, -0.5], [0.65, 0.3], [0.85, 1.5], [0.7, 2.8],
                        [0.35, 3.6], [0.1, 3.0], [-0.2, 1.7], [-0.45, 0.5]]) * [d, h]
    mask = rasterize([s1.to_frame(chaikin(outline, 0.15))], *canvas.shape)
    canvas += mask * (0.3 + _TEXTURE * texture) + _RIM * _rim(mask, max(1, int(round(0.05 * d))))
    s1_s2_junction = np.array([[-0.45, 0.55], [0.6, 0.5]]) * [d, h]
    _add(canvas, [s1.to_frame(band(s1_s2_junction, 0.08 * h))], 0.1)
