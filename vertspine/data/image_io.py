"""Reading images from disk into the uint8 convention of the 2D detection path.

The convention (what :func:`read_image` returns):

* dtype ``uint8``, values 0..255;
* shape ``[H, W, 3]`` in the requested channel order, ``"BGR"`` (detectron2's default
  ``INPUT.FORMAT``) or ``"RGB"``; or ``[H, W, 1]`` for ``"L"`` (grayscale);
* orientation: row 0 is the top of the image as displayed, column 0 its left; EXIF
  orientation (JPEG, TIFF, PNG eXIf) is applied, as detectron2's ``read_image`` does.

:func:`read_image` is two steps: a reader of :mod:`vertspine.data.readers` returns the file's
real values and meta, then :func:`to_display_uint8` is the one uint8 conversion:

* 8-bit PNG/JPEG/TIFF/BMP: pixel values unchanged. An alpha channel is dropped.
* 16-bit (and float) PNG/TIFF: linear min-max of the image to 0..255 (:func:`min_max_to_uint8`),
  colour images jointly over all channels so hues are kept.
* DICOM (``.dcm``/``.dicom``, or any file with the ``DICM`` preamble; compressed or without
  file meta): the display values of :func:`read_dicom` (modality LUT, VOI LUT or window,
  MONOCHROME1 inverted; colour as RGB) then :func:`min_max_to_uint8` (colour: kept as uint8).
* Grayscale sources become 3 channels in one place, :func:`to_three_channels` (all channels
  equal); colour becomes ``"L"`` with ITU-R BT.601 luma (OpenCV's colour-to-gray conversion).

Any file that is not DICOM is decoded as a raster by OpenCV whatever its ending. A missing file
raises :class:`FileNotFoundError`; anything that cannot be decoded raises
:class:`ImageReadError` naming the file, never a silently wrong array.
"""
import os

import cv2
import numpy as np

from .readers.base import ImageMeta, ImageReadError, PathLike, has_dicom_magic, read_file_bytes
from .readers.dicom import DicomReader
from .readers.raster import RasterReader

__all__ = [
    "IMAGE_FORMATS",
    "ImageReadError",
    "min_max_to_uint8",
    "min_max_to_unsigned",
    "read_dicom",
    "read_image",
    "to_display_uint8",
    "to_three_channels",
]

IMAGE_FORMATS = ("BGR", "RGB", "L")


def read_image(path: PathLike, format: str = "BGR") -> np.ndarray:
    """Read an image file (PNG/JPEG/TIFF/BMP, 8 or 16 bit, or DICOM) into the convention.

    Args:
        path: the image file.
        format: channel order of the result, one of :data:`IMAGE_FORMATS`.
    Returns:
        uint8 array, [H, W, 3] for "BGR"/"RGB" or [H, W, 1] for "L"; row 0 = top.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: the file is empty, corrupt, truncated or of an unsupported kind.
        ValueError: ``format`` is not one of :data:`IMAGE_FORMATS`.
    """
    if format not in IMAGE_FORMATS:
        raise ValueError(f"Unsupported image format {format!r}: use one of {IMAGE_FORMATS}.")
    data = read_file_bytes(path)
    if _is_dicom(path, data):
        reader = DicomReader(apply_voi=True, invert_monochrome1=True)
    else:
        reader = RasterReader()
    array, meta = reader.decode(path, data)
    return to_display_uint8(array, meta, format)


def read_dicom(path: PathLike, apply_voi: bool = True) -> np.ndarray:
    """The display values of a single-frame DICOM image, before quantisation.

    Grayscale steps: stored pixels -> modality LUT (RescaleSlope/RescaleIntercept or Modality
    LUT Sequence) -> if ``apply_voi``, the VOI LUT Sequence or the first
    WindowCenter/WindowWidth (pydicom's ``apply_voi_lut``; unchanged when the file has neither)
    -> MONOCHROME1 inverted within the image's own range (``max + min - v``), so larger always
    means brighter. Colour files give their RGB values. Compressed and header-less files read
    as :mod:`vertspine.data.readers.dicom` describes. (:class:`~vertspine.data.readers.
    DicomReader` without options gives the modality values, e.g. Hounsfield units, uninverted.)

    Args:
        path: the DICOM file.
        apply_voi: apply the VOI LUT / window; False keeps modality values (e.g. Hounsfield).
    Returns:
        float32 [H, W] (grayscale) or [H, W, 3] RGB in the stored dtype (colour); row 0 = top.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: not DICOM, no pixel data, undecodable, or several frames (a volume:
            read it with :func:`vertspine.data.readers.read_volume`).
    """
    values, meta = DicomReader(apply_voi=apply_voi, invert_monochrome1=True).read(path)
    if meta.spatial_dims != 2:
        raise ImageReadError(
            f"{os.fspath(path)}: a multi-frame DICOM of shape {values.shape} is a volume, not a "
            "2D image; read it with vertspine.data.readers.read_volume."
        )
    return values


def to_display_uint8(array: np.ndarray, meta: ImageMeta, format: str = "BGR") -> np.ndarray:
    """The one uint8 conversion of the 2D detection path, after a reader.

    uint8 arrays are kept; any other dtype goes through :func:`min_max_to_uint8` (jointly over
    colour channels); then the channel layout of ``format``.

    Args:
        array: a 2D reader's output, [H, W] (gray) or [H, W, 3] (``meta.channel_order`` "RGB").
        meta: its meta (names the file in errors, gives the channel order).
        format: one of :data:`IMAGE_FORMATS`.
    Returns:
        uint8 contiguous array, [H, W, 3] for "BGR"/"RGB" or [H, W, 1] for "L".
    Raises:
        ImageReadError: NaN or infinite values, or not a 2D image.
    """
    if meta.spatial_dims != 2:
        raise ImageReadError(
            f"{meta.source}: a {meta.spatial_dims}D image of shape {array.shape}; the uint8 "
            "display path takes 2D images (read volumes with vertspine.data.readers.read_volume)."
        )
    if array.dtype != np.uint8:
        try:
            array = min_max_to_uint8(array)
        except ValueError as e:
            raise ImageReadError(f"{meta.source}: {e}; fix or re-export the file.") from e
    if array.ndim == 2:
        array = array[:, :, None] if format == "L" else to_three_channels(array)
    elif format == "L":
        array = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2GRAY)[:, :, None]
    elif format == "BGR":
        array = array[:, :, ::-1]
    return np.ascontiguousarray(array)


def min_max_to_uint8(values: np.ndarray) -> np.ndarray:
    """:func:`min_max_to_unsigned` to uint8: the image minimum maps to 0, its maximum to 255."""
    return min_max_to_unsigned(values, np.uint8)


def min_max_to_unsigned(values: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Map values linearly so the image minimum is 0 and its maximum the dtype's largest value.

    ``out = floor((v - min) * top / (max - min) + 0.5)`` (rounded half up, ``top`` 255 for
    uint8 and 65535 for uint16), over all elements jointly; a constant image maps to 0.

    Args:
        values: any real array, e.g. uint16 [H, W] or [H, W, 3], float [H, W].
        dtype: an unsigned integer dtype (uint8, uint16).
    Returns:
        array of ``dtype``, of the same shape.
    Raises:
        ValueError: ``values`` contains NaN or infinity.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or infinite values")
    top = float(np.iinfo(dtype).max)
    low, high = values.min(), values.max()
    if high <= low:
        return np.zeros(values.shape, dtype=dtype)
    return np.floor((values - low) * (top / (high - low)) + 0.5).astype(dtype)


def to_three_channels(gray: np.ndarray) -> np.ndarray:
    """Repeat a grayscale image into 3 equal channels (valid as both BGR and RGB).

    Args:
        gray: [H, W] or [H, W, 1].
    Returns:
        [H, W, 3], same dtype.
    """
    return np.repeat(gray.reshape(gray.shape[0], gray.shape[1], 1), 3, axis=2)


def _is_dicom(path: PathLike, data: bytes) -> bool:
    """Whether a file is DICOM: by its extension, or the ``DICM`` magic after the preamble."""
    return has_dicom_magic(data) or os.fspath(path).lower().endswith(DicomReader.endings)
