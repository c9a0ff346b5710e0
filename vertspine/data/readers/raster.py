"""PNG/JPEG/TIFF/BMP: the pixels the file holds, in its dtype (uint8, uint16 or float).

Decoded with OpenCV (``IMREAD_UNCHANGED``, which keeps 16 bits); an alpha channel is dropped;
colour is returned as RGB ``[H, W, 3]``, grayscale as ``[H, W]``. The EXIF orientation tag
(JPEG, TIFF, PNG eXIf; read with Pillow from the header only) is applied, as detectron2's
``read_image`` does, so row 0 is the top of the image as displayed. These files hold no
physical geometry: spacing (1, 1), affine ``diag(1, 1, 1, 1)``.
"""
import io
import os
from typing import Callable, Dict, Tuple

import cv2
import numpy as np
from PIL import Image

from .base import (
    ImageMeta,
    ImageReadError,
    ImageReader,
    PathLike,
    axcodes,
    read_file_bytes,
    scaling_affine,
)
from .registry import register_reader

__all__ = ["RasterReader"]

_EXIF_ORIENTATION_TAG = 274
# EXIF orientation -> the transform that displays the stored [H, W, ...] array upright
# (same table as PIL.ImageOps.exif_transpose; np.rot90 turns counter-clockwise).
_EXIF_TRANSFORMS: Dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


@register_reader
class RasterReader(ImageReader):
    """An 8/16-bit or float PNG, JPEG, TIFF or BMP image."""

    name = "raster"
    endings = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """[H, W] (gray) or [H, W, 3] (RGB) in the file's dtype, upright, and its meta."""
        return self.decode(path, read_file_bytes(path))

    def decode(self, path: PathLike, data: bytes) -> Tuple[np.ndarray, ImageMeta]:
        """:meth:`read` on the file's content ``data`` (``path`` names it in errors)."""
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ImageReadError(
                f"{os.fspath(path)}: cannot decode the image: the file is truncated, corrupt or "
                "not a PNG/JPEG/TIFF/BMP/DICOM image. Re-export or re-copy it, or remove it from "
                "the dataset."
            )
        dtype = image.dtype
        if image.ndim == 3:  # BGR(A) -> RGB, alpha dropped
            image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, 2::-1]
        image = _EXIF_TRANSFORMS.get(_exif_orientation(data), lambda a: a)(image)
        affine = scaling_affine((1.0, 1.0))
        meta = ImageMeta(spacing=(1.0, 1.0), affine=affine, orientation=axcodes(affine, 2),
                         original_dtype=dtype, spatial_dims=2, source=os.fspath(path),
                         channel_order="RGB" if image.ndim == 3 else None)
        return image, meta


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of an encoded image, 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "PNG" and "exif" not in image.info:
                return 1  # else Pillow decodes all pixels looking for an eXIf chunk after IDAT
            return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # EXIF is optional metadata: a broken block means "no rotation"
        return 1
