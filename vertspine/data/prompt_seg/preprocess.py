"""LiteMedSAM/DAFT preprocessing: the one function training and inference both use.

For an image (2D, or one slice of a volume) and a model side S:

1. optional CT window: values clipped to ``[level - width/2, level + width/2]`` HU (the
   originals have none; challenge 3D data is already windowed to uint8);
2. grey -> 3 channels (the same values in each);
3. longest side resized to S with ``cv2.INTER_AREA``, the other side ``int(side * S / max(H, W)
   + 0.5)`` (LiteMedSAM's ``resize_longest_side``), in the image's own dtype (uint8 stays uint8,
   as in the originals);
4. per-image min-max to [0, 1]: ``(x - min) / max(max - min, 1e-8)`` over all channels;
5. zero padding at the bottom and right to S x S.

Boxes in the original image's pixel indices map to the S x S frame by one factor S / max(H, W)
on every coordinate, kept in float (the originals truncated them to int) and clipped to the
resized image (:func:`scale_boxes`). Masks map with
``cv2.INTER_NEAREST`` and the same padding.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    "apply_ct_window",
    "mask_boxes",
    "preprocess_image",
    "resize_labels",
    "resized_shape",
    "scale_boxes",
]

_CV2_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)  # cv2.resize takes these
_MIN_RANGE = 1e-8


def resized_shape(height: int, width: int, image_size: int) -> Tuple[int, int]:
    """(h, w) after the longest side is resized to ``image_size`` (sides rounded half up)."""
    scale = image_size / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def scale_boxes(boxes: np.ndarray, height: int, width: int, image_size: int) -> np.ndarray:
    """Boxes of an (H, W) image in the S x S frame: every coordinate times S / max(H, W), kept in
    float, clipped to the resized image ``[0, w - 1] x [0, h - 1]`` (never into the padding).

    Args:
        boxes: [N, 4] ``x_min, y_min, x_max, y_max``, inclusive pixel indices of the image.
        height, width: H, W of the image.
        image_size: S.
    Returns:
        float64 [N, 4] in the S x S frame.
    """
    new_h, new_w = resized_shape(height, width, image_size)
    scaled = np.asarray(boxes, np.float64) * (image_size / max(height, width))
    return np.clip(scaled, 0, [new_w - 1, new_h - 1, new_w - 1, new_h - 1])


def apply_ct_window(image: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """Clip Hounsfield units to a window: float32 values in ``[level - width/2, level + width/2]``.

    Args:
        image: HU values, any shape.
        window: (level, width) in HU, width > 0.
    Raises:
        ValueError: ``window`` is not (level, width) with a positive width.
    """
    if len(window) != 2 or not window[1] > 0:
        raise ValueError(f"CT window {tuple(window)} must be (level, width) in HU with width > 0 "
                         "(INPUT.PROMPT_SEG.CT_WINDOW), e.g. (40, 400) for soft tissue.")
    level, width = float(window[0]), float(window[1])
    return np.clip(image.astype(np.float32), level - width / 2, level + width / 2)


def preprocess_image(image: np.ndarray, image_size: int,
                     ct_window: Optional[Sequence[float]] = None
                     ) -> Tuple[np.ndarray, Tuple[int, int]]:
    """The model input of one image (steps in the module docstring).

    Args:
        image: [H, W] grey or [H, W, 3] RGB, any real dtype (uint8, HU integers or floats).
        image_size: S.
        ct_window: (level, width) HU applied first, or None.
    Returns:
        (float32 [3, S, S] in [0, 1], zero-padded; (h, w) the resized size before padding).
    Raises:
        ValueError: not a [H, W] or [H, W, 3] array, or an empty one.
    """
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)) or min(image.shape) == 0:
        raise ValueError(f"preprocess_image takes a [H, W] or [H, W, 3] image, got {image.shape}.")
    if ct_window:
        image = apply_ct_window(image, ct_window)
    elif image.dtype not in _CV2_DTYPES:
        image = image.astype(np.float32)
    new_h, new_w = resized_shape(image.shape[0], image.shape[1], image_size)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if resized.ndim == 2:
        resized = np.repeat(resized[..., None], 3, axis=-1)
    resized = resized.astype(np.float64)
    low = resized.min()
    normalised = (resized - low) / max(resized.max() - low, _MIN_RANGE)
    padded = np.zeros((3, image_size, image_size), np.float32)
    padded[:, :new_h, :new_w] = normalised.transpose(2, 0, 1)
    return padded, (new_h, new_w)


def resize_labels(labels: np.ndarray, image_size: int) -> np.ndarray:
    """A label map [H, W] in the S x S frame: nearest-neighbour resize, zero padding.

    Args:
        labels: integer [H, W].
        image_size: S.
    Returns:
        [S, S] of the same dtype (uint16 or narrower; wider maps are compacted first).
    """
    values, compact = np.unique(labels, return_inverse=True)
    if len(values) > np.iinfo(np.uint16).max:
        raise ValueError(f"A label map with {len(values)} distinct values cannot be resized "
                         "(at most 65535 objects).")
    compact = compact.reshape(labels.shape).astype(np.uint16)
    new_h, new_w = resized_shape(labels.shape[0], labels.shape[1], image_size)
    resized = cv2.resize(compact, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((image_size, image_size), labels.dtype)
    out[:new_h, :new_w] = values[resized]
    return out


def mask_boxes(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
    """The tight box of each label value's pixels: float64 [B, 4] ``x_min, y_min, x_max, y_max``
    as inclusive pixel indices (the challenge's convention).

    Raises:
        ValueError: a value has no pixel in ``labels``.
    """
    boxes = np.zeros((len(values), 4), np.float64)
    for i, value in enumerate(values):
        rows = np.flatnonzero((labels == value).any(axis=1))
        cols = np.flatnonzero((labels == value).any(axis=0))
        if not len(rows):
            raise ValueError(f"Label {value} has no pixel; cannot take its box.")
        boxes[i] = cols[0], rows[0], cols[-1], rows[-1]
    return boxes
