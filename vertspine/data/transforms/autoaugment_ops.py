"""The operations of AutoAugment for detection as detectron2 ``Transform`` classes.

Geometric operations (rotate, translate, shear) are one :class:`AffineTransform` that keeps
the image size: ``apply_image`` warps the pixels, ``apply_coords`` maps points, and boxes follow
through detectron2's ``Transform.apply_box`` rule (transform the 4 corners, take their min/max;
what TF's ``_rotate_bbox``/``_shear_bbox`` do too). detectron2 then clips boxes to the image and
drops empty ones. Photometric operations subclass :class:`PhotometricTransform`: they change
pixels only, so coordinates, boxes and segmentation pass unchanged.

Coordinate frame (detectron2's): x right, y down, continuous, pixel (i, j) covers
[i, i+1) x [j, j+1); a 2x3 matrix ``M`` maps a point p of the input to ``M[:, :2] p + M[:, 2]``
of the output. Images are uint8 [H, W, C] (C = 1 or 3), values as the formulas of TF's
``autoaugment_utils`` / PIL's ``ImageEnhance``/``ImageOps``, which these follow.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.data.transforms import Transform
from PIL import Image, ImageEnhance, ImageOps

__all__ = [
    "AffineTransform",
    "AutoContrastTransform",
    "BoxContentTranslateTransform",
    "BrightnessTransform",
    "CutoutTransform",
    "EnhanceTransform",
    "EqualizeTransform",
    "PhotometricTransform",
    "SolarizeAddTransform",
    "SolarizeTransform",
    "rotation_matrix",
    "shear_matrix",
    "translation_matrix",
]


def _check_uint8(img: np.ndarray) -> None:
    if img.dtype != np.uint8:
        raise ValueError(
            f"AutoAugment operations need uint8 images [H, W, C], got {img.dtype}: apply them "
            "before any normalisation (INPUT.AUTOAUGMENT acts in the dataset mapper)."
        )


class AffineTransform(Transform):
    """An affine warp of the image onto a canvas of the same size, empty pixels = ``fill``."""

    def __init__(self, matrix: np.ndarray, height: int, width: int, fill: int = 128,
                 interp: int = cv2.INTER_LINEAR):
        """
        Args:
            matrix: [2, 3] map of input points to output points (detectron2 frame).
            height, width: image size in pixels (unchanged by the warp).
            fill: value of pixels that come from outside the input image.
            interp: cv2 interpolation flag for images.
        """
        super().__init__()
        matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray, interp: Optional[int] = None) -> np.ndarray:
        """Warp uint8 [H, W, C] pixels (``interp`` overrides the cv2 interpolation)."""
        _check_uint8(img)
        flags = self.interp if interp is None else interp
        warped = cv2.warpAffine(img, self._index_matrix(), (self.width, self.height), flags=flags,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(self.fill,) * 4)
        return warped.reshape(img.shape)

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """[N, 2] (x, y) points of the input -> points of the output."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        return coords @ self.matrix[:, :2].T + self.matrix[:, 2]

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        """Nearest-neighbour warp of a label map; empty pixels become 0."""
        labels = segmentation.astype(np.uint8) if segmentation.dtype == bool else segmentation
        warped = cv2.warpAffine(labels, self._index_matrix(), (self.width, self.height),
                                flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                borderValue=0)
        return warped.astype(segmentation.dtype).reshape(segmentation.shape)

    def _index_matrix(self) -> np.ndarray:
        """The matrix on pixel indices: cv2 indexes pixel centres, i.e. coordinates - 0.5."""
        linear, shift = self.matrix[:, :2], self.matrix[:, 2]
        return np.hstack([linear, (shift + linear @ [0.5, 0.5] - 0.5)[:, None]])

    def inverse(self) -> "AffineTransform":
        """The inverse warp (pixels outside the image after the forward warp are lost)."""
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return AffineTransform(np.linalg.inv(full)[:2], self.height, self.width, self.fill,
                               self.interp)


def rotation_matrix(height: int, width: int, degrees: float) -> np.ndarray:
    """[2, 3] rotation about the image centre, counter-clockwise as displayed for degrees > 0
    (detectron2's ``RotationTransform`` and PIL's ``Image.rotate`` convention)."""
    return cv2.getRotationMatrix2D((width / 2.0, height / 2.0), degrees, 1.0)


def translation_matrix(dx: float, dy: float) -> np.ndarray:
    """[2, 3] shift of the content by (dx, dy) pixels."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def shear_matrix(height: int, width: int, level: float, horizontal: bool) -> np.ndarray:
    """[2, 3] shear about the image centre: x' = x - level (y - cy) (horizontal) or
    y' = y - level (x - cx); TF's shear (PIL affine (1, level, 0, 0, 1, 0)) is the same about
    the origin, whose shift pushes the bottom of a tall radiograph out of the frame."""
    cx, cy = width / 2.0, height / 2.0
    if horizontal:
        return np.array([[1.0, -level, level * cy], [0.0, 1.0, 0.0]])
    return np.array([[1.0, 0.0, 0.0], [-level, 1.0, level * cx]])


class PhotometricTransform(Transform):
    """A pixel-value operation: coordinates, boxes and label maps are unchanged."""

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        return coords

    def apply_segmentation(self, segmentation: np.ndarray) -> np.ndarray:
        return segmentation

    def inverse(self) -> Transform:
        raise NotImplementedError(f"{type(self).__name__} cannot be inverted.")


def _pil_apply(img: np.ndarray, operation) -> np.ndarray:
    """Run a PIL operation on a uint8 [H, W, 1|3] array, channel by channel for 1 channel."""
    _check_uint8(img)
    pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
    return np.asarray(operation(pil), dtype=np.uint8).reshape(img.shape)


class EqualizeTransform(PhotometricTransform):
    """Histogram equalisation of each channel (``PIL.ImageOps.equalize``)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        return _pil_apply(img, ImageOps.equalize)


class AutoContrastTransform(PhotometricTransform):
    """Each channel linearly stretched so its min is 0 and its max 255 (constant: unchanged)."""

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        out = img.copy()
        for c in range(img.shape[2]):
            low, high = float(img[:, :, c].min()), float(img[:, :, c].max())
            if high > low:
                scaled = (img[:, :, c].astype(np.float64) - low) * 255.0 / (high - low)
                out[:, :, c] = np.clip(scaled, 0, 255).astype(np.uint8)
        return out


class EnhanceTransform(PhotometricTransform):
    """PIL ``ImageEnhance`` ``kind`` ("Color", "Contrast" or "Sharpness") with ``factor``
    (1 = unchanged); channels are read as RGB for the luma of Color/Contrast."""

    def __init__(self, kind: str, factor: float):
        super().__init__()
        if kind not in ("Color", "Contrast", "Sharpness"):
            raise ValueError(f"Unknown enhancement {kind!r}: use Color, Contrast or Sharpness.")
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        enhancer = getattr(ImageEnhance, self.kind)
        return _pil_apply(img, lambda pil: enhancer(pil).enhance(self.factor))


class BrightnessTransform(PhotometricTransform):
    """Blend with black: ``clip(factor * img)``, truncated to uint8 (TF's ``blend``)."""

    def __init__(self, factor: float):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        return np.clip(img.astype(np.float32) * self.factor, 0, 255).astype(np.uint8)


class SolarizeTransform(PhotometricTransform):
    """Pixels >= ``threshold`` inverted (255 - v); ``threshold`` 256 changes nothing."""

    def __init__(self, threshold: int):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        return np.where(img < self.threshold, img, 255 - img).astype(np.uint8)


class SolarizeAddTransform(PhotometricTransform):
    """Pixels < ``threshold`` get ``addition`` added (clipped to 0..255); others unchanged."""

    def __init__(self, addition: int, threshold: int = 128):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        added = np.clip(img.astype(np.int32) + self.addition, 0, 255).astype(np.uint8)
        return np.where(img < self.threshold, added, img)


class CutoutTransform(PhotometricTransform):
    """Fill the pixel rectangle [x0, x1) x [y0, y1) with ``fill`` (Cutout and BBox_Cutout)."""

    def __init__(self, x0: int, y0: int, x1: int, y1: int, fill: int = 128):
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        out = img.copy()
        out[max(self.y0, 0):max(self.y1, 0), max(self.x0, 0):max(self.x1, 0)] = self.fill
        return out


class BoxContentTranslateTransform(PhotometricTransform):
    """Shift the content inside each chosen box by ``dy`` rows (TranslateY_Only_BBoxes): the
    box keeps its place, content leaving it is lost, vacated pixels become ``fill``."""

    def __init__(self, boxes: Sequence[Tuple[int, int, int, int]], dy: int, fill: int = 128):
        """
        Args:
            boxes: pixel rectangles (x0, y0, x1, y1), end exclusive, inside the image.
            dy: rows to move the content down (negative: up).
            fill: value of the vacated pixels.
        """
        super().__init__()
        self._set_attributes(locals())

    def apply_image(self, img: np.ndarray) -> np.ndarray:
        _check_uint8(img)
        out = img.copy()
        for x0, y0, x1, y1 in self.boxes:
            region = out[y0:y1, x0:x1].copy()
            shifted = np.full_like(region, self.fill)
            rows = y1 - y0
            if abs(self.dy) < rows:
                if self.dy >= 0:
                    shifted[self.dy:] = region[: rows - self.dy]
                else:
                    shifted[: rows + self.dy] = region[-self.dy:]
            out[y0:y1, x0:x1] = shifted
        return out
