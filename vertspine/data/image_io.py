"""Reading images from disk into one array convention, for every source vertspine trains on.

The convention (what :func:`read_image` returns):

* dtype ``uint8``, values 0..255;
* shape ``[H, W, 3]`` in the requested channel order, ``"BGR"`` (detectron2's default
  ``INPUT.FORMAT``) or ``"RGB"``; or ``[H, W, 1]`` for ``"L"`` (grayscale);
* orientation: row 0 is the top of the image as displayed, column 0 its left; EXIF
  orientation (JPEG, TIFF, PNG eXIf) is applied, as detectron2's ``read_image`` does.

How each source maps to it:

* 8-bit PNG/JPEG/TIFF/BMP: pixel values unchanged. An alpha channel is dropped.
* 16-bit (and float) PNG/TIFF: linear min-max of the image to 0..255 (:func:`min_max_to_uint8`),
  colour images jointly over all channels so hues are kept.
* DICOM (``.dcm``/``.dicom``, or any file with the ``DICM`` preamble): the float values of
  :func:`read_dicom` (modality LUT, VOI LUT or window, MONOCHROME1 inverted) then
  :func:`min_max_to_uint8`.
* Grayscale sources become 3 channels in one place, :func:`to_three_channels` (all channels
  equal); colour becomes ``"L"`` with ITU-R BT.601 luma (OpenCV's ``COLOR_BGR2GRAY``).

Rasters are decoded with OpenCV (``IMREAD_UNCHANGED``, which keeps 16 bits and ignores EXIF);
the EXIF orientation tag is read with Pillow from the header only. A missing file raises
:class:`FileNotFoundError`; anything that cannot be decoded raises :class:`ImageReadError`
naming the file, never a silently wrong array.
"""
import errno
import io
import os
from typing import Callable, Dict, Union

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

__all__ = [
    "IMAGE_FORMATS",
    "ImageReadError",
    "min_max_to_uint8",
    "read_dicom",
    "read_image",
    "to_three_channels",
]

PathLike = Union[str, "os.PathLike[str]"]
IMAGE_FORMATS = ("BGR", "RGB", "L")
_DICOM_EXTENSIONS = (".dcm", ".dicom")
_DICOM_MAGIC_OFFSET = 128  # the 4 bytes b"DICM" follow a 128-byte preamble (PS3.10 7.1)
_EXIF_ORIENTATION_TAG = 274
_GRAYSCALE_DICOM = ("MONOCHROME1", "MONOCHROME2")
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


class ImageReadError(ValueError):
    """An image file exists but cannot be decoded into the vertspine array convention."""


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
    data = _read_bytes(path)
    if _is_dicom(path, data):
        image = _dicom_values(path, data, apply_voi=True)
    else:
        image = _decode_raster(path, data)
    if image.dtype != np.uint8:
        image = _quantise(path, image)
    return np.ascontiguousarray(_to_format(image, format))


def read_dicom(path: PathLike, apply_voi: bool = True) -> np.ndarray:
    """The display values of a grayscale single-frame DICOM, before quantisation.

    Steps: stored pixels -> modality LUT (RescaleSlope/RescaleIntercept or Modality LUT
    Sequence) -> if ``apply_voi``, the VOI LUT Sequence or the first WindowCenter/WindowWidth
    (pydicom's ``apply_voi_lut``; unchanged when the file has neither) -> MONOCHROME1 inverted
    within the image's own range (``max + min - v``), so larger always means brighter.

    Args:
        path: the DICOM file.
        apply_voi: apply the VOI LUT / window; False keeps modality values (e.g. Hounsfield).
    Returns:
        float32 array [H, W], row 0 = top.
    Raises:
        FileNotFoundError: ``path`` does not exist.
        ImageReadError: not DICOM, no pixel data, colour or multi-frame, or undecodable.
    """
    return _dicom_values(path, _read_bytes(path), apply_voi)


def min_max_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map values linearly so the image minimum is 0 and its maximum 255.

    ``out = floor((v - min) * 255 / (max - min) + 0.5)`` (rounded half up), over all elements
    jointly; a constant image maps to 0.

    Args:
        values: any real array, e.g. uint16 [H, W] or [H, W, 3], float [H, W].
    Returns:
        uint8 array of the same shape.
    Raises:
        ValueError: ``values`` contains NaN or infinity.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("image contains NaN or infinite values")
    low, high = values.min(), values.max()
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.floor((values - low) * (255.0 / (high - low)) + 0.5).astype(np.uint8)


def to_three_channels(gray: np.ndarray) -> np.ndarray:
    """Repeat a grayscale image into 3 equal channels (valid as both BGR and RGB).

    Args:
        gray: [H, W] or [H, W, 1].
    Returns:
        [H, W, 3], same dtype.
    """
    return np.repeat(gray.reshape(gray.shape[0], gray.shape[1], 1), 3, axis=2)


def _read_bytes(path: PathLike) -> bytes:
    """The whole file; FileNotFoundError naming the path, ImageReadError if it is empty."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            errno.ENOENT, "Image file not found (check image_root and file_name)", os.fspath(path)
        )
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ImageReadError(f"{os.fspath(path)}: the file is empty; re-export or re-copy it.")
    return data


def _is_dicom(path: PathLike, data: bytes) -> bool:
    """Whether a file is DICOM: by its extension, or the ``DICM`` magic after the preamble."""
    has_magic = data[_DICOM_MAGIC_OFFSET : _DICOM_MAGIC_OFFSET + 4] == b"DICM"
    return has_magic or os.fspath(path).lower().endswith(_DICOM_EXTENSIONS)


def _decode_raster(path: PathLike, data: bytes) -> np.ndarray:
    """Decode PNG/JPEG/TIFF/BMP bytes to [H, W] (gray) or [H, W, 3] (BGR), upright.

    The dtype is the file's: uint8, or uint16/float for 16-bit and float images.
    """
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(
            f"{os.fspath(path)}: cannot decode the image: the file is truncated, corrupt or not "
            "a PNG/JPEG/TIFF/BMP/DICOM image. Re-export or re-copy it, or remove it from the "
            "dataset."
        )
    if image.ndim == 3:
        image = image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3]  # drop alpha
    return _EXIF_TRANSFORMS.get(_exif_orientation(data), lambda a: a)(image)


def _quantise(path: PathLike, values: np.ndarray) -> np.ndarray:
    """:func:`min_max_to_uint8`, with the file named when the values are not finite."""
    try:
        return min_max_to_uint8(values)
    except ValueError as e:
        raise ImageReadError(f"{os.fspath(path)}: {e}; fix or re-export the file.") from e


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag (1..8) of an encoded image, 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format == "PNG" and "exif" not in image.info:
                return 1  # else Pillow decodes all pixels looking for an eXIf chunk after IDAT
            return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except Exception:  # EXIF is optional metadata: a broken block means "no rotation"
        return 1


def _to_format(image: np.ndarray, format: str) -> np.ndarray:
    """uint8 [H, W] gray or [H, W, 3] BGR -> the channel layout of ``format``."""
    if image.ndim == 2:
        return image[:, :, None] if format == "L" else to_three_channels(image)
    if format == "L":
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[:, :, None]
    return image if format == "BGR" else image[:, :, ::-1]


def _dicom_values(path: PathLike, data: bytes, apply_voi: bool) -> np.ndarray:
    """See :func:`read_dicom`; ``data`` is the file's content."""
    dataset = _parse_dicom(path, data)
    pixels = _stored_pixels(path, dataset)
    try:
        values = apply_modality_lut(pixels, dataset)
        if apply_voi:
            values = apply_voi_lut(values, dataset)
    except (AttributeError, ValueError) as e:  # e.g. WindowWidth < 1, incomplete LUT
        raise ImageReadError(
            f"{os.fspath(path)}: invalid modality/VOI LUT or window ({e}); fix the DICOM "
            "header, or read it with read_dicom(path, apply_voi=False)."
        ) from e
    values = values.astype(np.float64)
    if dataset.PhotometricInterpretation == "MONOCHROME1":
        values = values.max() + values.min() - values
    return values.astype(np.float32)


def _parse_dicom(path: PathLike, data: bytes) -> pydicom.Dataset:
    """Parse DICOM bytes, requiring pixel data."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, EOFError, OSError, ValueError) as e:
        raise ImageReadError(
            f"{os.fspath(path)}: not a readable DICOM file ({e}). A DICOM file needs the 128-byte "
            "preamble and 'DICM' (PS3.10); re-export it, or rename it if it is not DICOM."
        ) from e
    if not any(key in dataset for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(
            f"{os.fspath(path)}: DICOM file without pixel data (SOP class "
            f"{dataset.get('SOPClassUID', 'unknown')}), e.g. a report or DICOMDIR: it is not an "
            "image; remove it from the dataset."
        )
    return dataset


def _stored_pixels(path: PathLike, dataset: pydicom.Dataset) -> np.ndarray:
    """The stored values [H, W] of a grayscale single-frame DICOM dataset."""
    photometric = dataset.get("PhotometricInterpretation")
    if photometric not in _GRAYSCALE_DICOM:
        raise ImageReadError(
            f"{os.fspath(path)}: PhotometricInterpretation is {photometric!r}; only grayscale "
            f"{_GRAYSCALE_DICOM} DICOM is supported. Convert it to PNG first."
        )
    try:
        pixels = dataset.pixel_array
    except Exception as e:  # pydicom raises many types here; re-raised with the file named
        raise ImageReadError(
            f"{os.fspath(path)}: cannot decode the DICOM pixel data (transfer syntax "
            f"{dataset.file_meta.get('TransferSyntaxUID', 'unknown')}): {e}. For compressed "
            "DICOM install a pydicom decoder (pylibjpeg, python-gdcm) or decompress the file."
        ) from e
    if pixels.ndim != 2:
        raise ImageReadError(
            f"{os.fspath(path)}: pixel array of shape {pixels.shape}: multi-frame DICOM is not "
            "supported; split it into single-frame files."
        )
    return pixels
