"""Appearance domains: how a vessel occupancy volume becomes an image (domain randomisation).

The rendering of one volume, in this order (intensities in arbitrary units, background near
``background``):

1. tissue: ``background`` + a smooth random texture (white noise blurred by
   ``texture_sigma`` voxels, scaled to ``texture_amplitude`` std) + up to ``max_blobs`` soft
   ellipsoidal distractors (e.g. organs, cells) of ``blob_contrast`` x the vessel contrast;
2. vessels: + ``contrast`` x occupancy (the partial-volume occupancy of
   :func:`~.tree.rasterize_tubes`), with a +-10% smooth texture along the vessels;
3. point-spread blur: a gaussian of ``blur`` fine voxels (converted per axis by the spacing);
4. inversion with probability ``invert_probability``: ``min + max - image`` (dark vessels);
5. bias field: ``exp(bias * P)``, ``P`` a random quadratic polynomial of the normalised
   coordinates scaled to max |P| = 1;
6. noise of a type drawn from ``noise_types`` (:data:`NOISE_MODELS`) with std ``noise``;
7. storage: ``gain * image + offset`` in ``dtype``.

Two domains: :data:`TRAIN_APPEARANCE` (train, val, test) and :data:`SHIFT_APPEARANCE`
(shift_test, shift_train), whose **shifted** parameters (:data:`SHIFTED_PARAMETERS`) use values never
drawn in training: other noise types (Rician and speckle, not gaussian), lower contrast,
stronger noise, blur, bias and texture, a majority of inverted volumes, and a CT-like
int16 storage. Geometry and spacing are shared, so the shift is appearance only.
"""
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Sequence, Tuple

import numpy as np
from scipy import ndimage

__all__ = ["AppearanceDomain", "NOISE_MODELS", "SHIFTED_PARAMETERS", "SHIFT_APPEARANCE",
           "TRAIN_APPEARANCE", "draw_appearance", "render_volume"]

Range = Tuple[float, float]


def _gaussian(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    return image + rng.normal(0.0, std, image.shape)


def _rician(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a complex signal with gaussian noise in both channels (MRI)."""
    return np.hypot(image + rng.normal(0.0, std, image.shape), rng.normal(0.0, std, image.shape))


def _speckle(image: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise relative to the mean intensity (ultrasound/OCT-like)."""
    scale = std / max(float(np.mean(np.abs(image))), 1e-6)
    return image * (1.0 + rng.normal(0.0, scale, image.shape))


NOISE_MODELS: Dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "gaussian": _gaussian,
    "rician": _rician,
    "speckle": _speckle,
}


@dataclass(frozen=True)
class AppearanceDomain:
    """Ranges the appearance of a volume is drawn from (uniformly, per volume)."""

    name: str
    background: Range  # tissue level
    contrast: Range  # vessel minus tissue, before inversion
    texture_amplitude: Range  # std of the smooth tissue texture
    texture_sigma: Range  # its correlation length, fine voxels
    max_blobs: int  # distractors per volume, 0..max_blobs
    blob_contrast: Range  # distractor contrast / vessel contrast
    blur: Range  # point-spread sigma, fine voxels
    invert_probability: float  # share of volumes with dark vessels
    bias: Range  # log amplitude of the multiplicative bias field
    noise: Range  # noise std
    noise_types: Tuple[str, ...]  # keys of NOISE_MODELS, drawn uniformly
    gain: Range  # storage scale
    offset: Range  # storage offset
    dtype: str  # stored dtype ("float32" or "int16")

    def __post_init__(self):
        unknown = [n for n in self.noise_types if n not in NOISE_MODELS]
        if unknown or not self.noise_types:
            raise ValueError(f"AppearanceDomain '{self.name}': noise_types {self.noise_types} "
                             f"must be a non-empty subset of {sorted(NOISE_MODELS)}.")
        if self.dtype not in ("float32", "int16"):
            raise ValueError(f"AppearanceDomain '{self.name}': dtype {self.dtype!r}; use "
                             "'float32' or 'int16'.")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


TRAIN_APPEARANCE = AppearanceDomain(
    name="train", background=(0.1, 0.4), contrast=(0.35, 0.8), texture_amplitude=(0.0, 0.08),
    texture_sigma=(1.5, 6.0), max_blobs=6, blob_contrast=(0.3, 1.0), blur=(0.0, 0.9),
    invert_probability=0.25, bias=(0.0, 0.3), noise=(0.02, 0.085), noise_types=("gaussian",),
    gain=(0.5, 2.0), offset=(-0.2, 0.2), dtype="float32")

SHIFT_APPEARANCE = AppearanceDomain(
    name="shift", background=(0.1, 0.4), contrast=(0.29, 0.34), texture_amplitude=(0.085, 0.1),
    texture_sigma=(1.5, 6.0), max_blobs=6, blob_contrast=(0.3, 1.0), blur=(0.92, 1.05),
    invert_probability=0.75, bias=(0.32, 0.4), noise=(0.088, 0.1),
    noise_types=("rician", "speckle"), gain=(800.0, 2000.0), offset=(-1000.0, -500.0),
    dtype="int16")

# Parameters whose shift-domain values are never used in training (tested to be disjoint).
SHIFTED_PARAMETERS = ("contrast", "texture_amplitude", "blur", "invert_probability", "bias",
                      "noise", "noise_types", "gain", "offset", "dtype")


def draw_appearance(domain: AppearanceDomain, rng: np.random.Generator) -> Dict[str, Any]:
    """One volume's appearance parameters drawn from ``domain`` (JSON-ready values)."""
    drawn: Dict[str, Any] = {"domain": domain.name}
    for name in ("background", "contrast", "texture_amplitude", "texture_sigma", "blur", "bias",
                 "noise", "gain", "offset"):
        drawn[name] = float(rng.uniform(*getattr(domain, name)))
    drawn["num_blobs"] = int(rng.integers(domain.max_blobs + 1))
    drawn["blob_contrast"] = float(rng.uniform(*domain.blob_contrast))
    drawn["inverted"] = bool(rng.random() < domain.invert_probability)
    drawn["noise_type"] = str(domain.noise_types[int(rng.integers(len(domain.noise_types)))])
    drawn["dtype"] = domain.dtype
    return drawn


def _smooth_noise(shape: Sequence[int], sigma: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-blurred white noise with unit std."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field / max(float(field.std()), 1e-12)


def _blobs(shape: Sequence[int], spacing: np.ndarray, count: int,
           rng: np.random.Generator) -> np.ndarray:
    """Soft ellipsoids (semi-axes 3-8 fine voxels) in [0, 1]."""
    grids = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing)), indexing="ij",
                        sparse=True)
    out = np.zeros(shape, np.float32)
    fine = float(spacing.min())
    for _ in range(count):
        centre = rng.uniform(0, 1, 3) * (np.asarray(shape) - 1) * spacing
        axes = rng.uniform(3.0, 8.0, 3) * fine
        radius = np.sqrt(sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, axes)))
        np.maximum(out, np.clip((1.0 - radius) * 3.0, 0.0, 1.0), out=out)
    return out


def render_volume(occupancy: np.ndarray, spacing: Sequence[float], appearance: Dict[str, Any],
                  rng: np.random.Generator) -> np.ndarray:
    """The image of a vessel occupancy volume (steps in the module docstring).

    Args:
        occupancy: float32 [I, J, K] in [0, 1] (partial volume of the vessels).
        spacing: mm per voxel along the 3 axes.
        appearance: parameters from :func:`draw_appearance`.
        rng: the volume's appearance generator (textures, blobs, bias, noise).
    Returns:
        [I, J, K] image in ``appearance["dtype"]``.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    per_axis = spacing.min() / spacing  # fine voxels -> voxels of each axis
    shape = occupancy.shape
    a = appearance
    image = a["background"] + a["texture_amplitude"] * _smooth_noise(
        shape, a["texture_sigma"] * per_axis, rng)
    image += a["blob_contrast"] * a["contrast"] * _blobs(shape, spacing, a["num_blobs"], rng)
    vessel_texture = 1.0 + 0.1 * _smooth_noise(shape, 3.0 * per_axis, rng)
    image += a["contrast"] * occupancy * vessel_texture
    if a["blur"] > 0:
        image = ndimage.gaussian_filter(image, a["blur"] * per_axis)
    if a["inverted"]:
        image = image.min() + image.max() - image
    coords = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij", sparse=True)
    terms = list(coords) + [coords[i] * coords[j] for i in range(3) for j in range(i, 3)]
    polynomial = sum(w * t for w, t in zip(rng.normal(size=len(terms)), terms))
    polynomial = polynomial / max(float(np.abs(polynomial).max()), 1e-12)
    image = image * np.exp(a["bias"] * polynomial)
    image = NOISE_MODELS[a["noise_type"]](image, a["noise"], rng)
    image = a["gain"] * image + a["offset"]
    if a["dtype"] == "int16":
        return np.clip(np.round(image), -32768, 32767).astype(np.int16)
    return image.astype(np.float32)
