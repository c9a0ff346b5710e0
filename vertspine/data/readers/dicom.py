"""Single-file DICOM: one grayscale frame in its modality values (e.g. Hounsfield units).

Values: stored pixels -> modality LUT (RescaleSlope/RescaleIntercept or the Modality LUT
Sequence) -> optionally the VOI LUT / window (``apply_voi``, off by default) -> optionally
MONOCHROME1 inverted within the image's range (``invert_monochrome1``, a display step, off by
default). float32 [H, W], row 0 = top.

Geometry: spacing ``(row, column)`` from PixelSpacing (ImagerPixelSpacing for projection
radiographs without it; 1 mm when neither is present). The affine maps index ``(row, column)``
through ImageOrientationPatient/ImagePositionPatient (DICOM LPS converted to RAS) where the file
has them, else it is ``diag(spacing, 1)``.

Compressed transfer syntaxes need a pydicom decoder; colour and multi-frame objects raise
:class:`~.base.ImageReadError` (not supported yet).
"""
import io
import os
from typing import Optional, Tuple

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from .base import (
    ImageMeta,
    ImageReadError,
    ImageReader,
    PathLike,
    axcodes,
    check_spacing,
    read_file_bytes,
    scaling_affine,
)
from .registry import register_reader

__all__ = [
    "DicomReader",
    "LPS_TO_RAS",
    "modality_values",
    "orientation_cosines",
    "parse_dicom",
    "series_affine",
    "slice_normal",
    "slice_thickness",
    "stored_pixels",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # DICOM patient (LPS) -> nibabel world (RAS)
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_PIXEL_KEYS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@register_reader
class DicomReader(ImageReader):
    """A grayscale single-frame DICOM file (``.dcm``, ``.dicom`` or any file with ``DICM``).

    Args:
        apply_voi: apply the VOI LUT Sequence or first WindowCenter/WindowWidth (display values).
        invert_monochrome1: invert MONOCHROME1 images (``max + min - v``), so larger values
            always display brighter.
    """

    name = "dicom"
    endings = (".dcm", ".dicom")

    def __init__(self, *, apply_voi: bool = False, invert_monochrome1: bool = False):
        self.apply_voi = apply_voi
        self.invert_monochrome1 = invert_monochrome1

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """float32 [H, W] values and their meta (see the module docstring)."""
        return self.decode(path, read_file_bytes(path))

    def decode(self, path: PathLike, data: bytes) -> Tuple[np.ndarray, ImageMeta]:
        """:meth:`read` on the file's content ``data`` (``path`` names it in errors)."""
        dataset = parse_dicom(path, data)
        pixels = stored_pixels(path, dataset)
        values = modality_values(path, dataset, pixels, apply_voi=self.apply_voi)
        if self.invert_monochrome1 and dataset.PhotometricInterpretation == "MONOCHROME1":
            values = values.max() + values.min() - values
        spacing = _pixel_spacing(path, dataset)
        affine = _slice_affine(path, dataset, spacing, slice_thickness(dataset))
        meta = ImageMeta(spacing=spacing, affine=affine, orientation=axcodes(affine, 2),
                         original_dtype=pixels.dtype, spatial_dims=2, source=os.fspath(path))
        return values.astype(np.float32), meta


def parse_dicom(path: PathLike, data: Optional[bytes] = None) -> pydicom.Dataset:
    """Parse a DICOM file (or its content ``data``), requiring pixel data.

    Raises:
        ImageReadError: not DICOM (no preamble), or no pixel data (e.g. a report or DICOMDIR).
    """
    try:
        dataset = pydicom.dcmread(io.BytesIO(data) if data is not None else os.fspath(path))
    except (InvalidDicomError, EOFError, OSError, ValueError) as e:
        raise ImageReadError(
            f"{os.fspath(path)}: not a readable DICOM file ({e}). A DICOM file needs the 128-byte "
            "preamble and 'DICM' (PS3.10); re-export it, or rename it if it is not DICOM."
        ) from e
    if not any(key in dataset for key in _PIXEL_KEYS):
        raise ImageReadError(
            f"{os.fspath(path)}: DICOM file without pixel data (SOP class "
            f"{dataset.get('SOPClassUID', 'unknown')}), e.g. a report or DICOMDIR: it is not an "
            "image; remove it from the dataset."
        )
    return dataset


def stored_pixels(path: PathLike, dataset: pydicom.Dataset) -> np.ndarray:
    """The stored values [H, W] of a grayscale single-frame DICOM dataset.

    Raises:
        ImageReadError: colour, multi-frame, or pixel data that cannot be decoded.
    """
    photometric = dataset.get("PhotometricInterpretation")
    if photometric not in _GRAYSCALE:
        raise ImageReadError(
            f"{os.fspath(path)}: PhotometricInterpretation is {photometric!r}; only grayscale "
            f"{_GRAYSCALE} DICOM is supported. Convert it to PNG first."
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


def modality_values(path: PathLike, dataset: pydicom.Dataset, pixels: np.ndarray, *,
                    apply_voi: bool) -> np.ndarray:
    """Stored ``pixels`` -> modality LUT -> (if ``apply_voi``) VOI LUT / window; float64.

    Raises:
        ImageReadError: an invalid LUT or window (e.g. WindowWidth < 1).
    """
    try:
        values = apply_modality_lut(pixels, dataset)
        if apply_voi:
            values = apply_voi_lut(values, dataset)
    except (AttributeError, ValueError) as e:  # e.g. WindowWidth < 1, incomplete LUT
        raise ImageReadError(
            f"{os.fspath(path)}: invalid modality/VOI LUT or window ({e}); fix the DICOM "
            "header, or read it with read_dicom(path, apply_voi=False)."
        ) from e
    return values.astype(np.float64)


def orientation_cosines(path: PathLike, dataset: pydicom.Dataset) -> Optional[np.ndarray]:
    """ImageOrientationPatient as [2, 3] (row direction, column direction) in LPS, or None.

    Row direction: the way a row runs (column index increasing); column direction: the way a
    column runs (row index increasing), PS3.3 C.7.6.2.1.1.

    Raises:
        ImageReadError: the attribute is present but not two unit, orthogonal vectors.
    """
    if "ImageOrientationPatient" not in dataset:
        return None
    cosines = np.asarray([float(v) for v in dataset.ImageOrientationPatient]).reshape(-1, 3)
    if (cosines.shape != (2, 3) or not np.allclose(np.linalg.norm(cosines, axis=1), 1, atol=1e-3)
            or abs(cosines[0] @ cosines[1]) > 1e-3):
        raise ImageReadError(
            f"{os.fspath(path)}: ImageOrientationPatient {cosines.ravel().tolist()} is not two "
            "orthogonal unit vectors; fix the DICOM header."
        )
    return cosines


def _pixel_spacing(path: PathLike, dataset: pydicom.Dataset) -> Tuple[float, float]:
    """(row spacing, column spacing) in mm: PixelSpacing, ImagerPixelSpacing, or (1, 1)."""
    for key in ("PixelSpacing", "ImagerPixelSpacing"):
        if dataset.get(key):
            return check_spacing(path, dataset.get(key), 2,
                                 f"fix the DICOM {key} (row spacing \\ column spacing, mm).")
    return (1.0, 1.0)


def slice_thickness(dataset: pydicom.Dataset) -> float:
    """The slice's extent along its normal: SpacingBetweenSlices, SliceThickness, or 1 mm."""
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        value = dataset.get(key)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return 1.0


def _slice_affine(path: PathLike, dataset: pydicom.Dataset, spacing: Tuple[float, float],
                  thickness: float) -> np.ndarray:
    """RAS affine of index (row, column, k) of one slice, or diag(spacing, 1) without geometry."""
    cosines = orientation_cosines(path, dataset)
    if cosines is None or "ImagePositionPatient" not in dataset:
        return scaling_affine(spacing)
    return series_affine(cosines, [float(v) for v in dataset.ImagePositionPatient], spacing,
                         slice_normal(cosines) * thickness)


def slice_normal(cosines: np.ndarray) -> np.ndarray:
    """The unit slice normal ``column direction x row direction`` (LPS), as nibabel's.

    With it, index axes (row, column, slice) form a right-handed frame, as nibabel's DICOM
    wrappers choose (SimpleITK indexes (column, row, slice) and so uses the opposite normal).
    """
    normal = np.cross(cosines[1], cosines[0])
    return normal / np.linalg.norm(normal)


def series_affine(cosines: np.ndarray, first_position, spacing: Tuple[float, float],
                  slice_step: np.ndarray) -> np.ndarray:
    """The RAS+ affine of voxel index (row, column, slice).

    Args:
        cosines: [2, 3] row and column direction cosines (LPS), see :func:`orientation_cosines`.
        first_position: ImagePositionPatient of the first slice (LPS mm): the centre of its
            first transmitted pixel.
        spacing: (row spacing, column spacing) in mm (PixelSpacing order).
        slice_step: LPS mm vector from one slice's position to the next.
    Returns:
        float64 [4, 4]: column 0 = column direction * row spacing (moving down a row), column 1
        = row direction * column spacing, column 2 = ``slice_step``, column 3 = position;
        x and y negated (LPS -> RAS).
    """
    affine = np.eye(4)
    affine[:3, 0] = cosines[1] * spacing[0]
    affine[:3, 1] = cosines[0] * spacing[1]
    affine[:3, 2] = slice_step
    affine[:3, 3] = first_position
    return LPS_TO_RAS @ affine
