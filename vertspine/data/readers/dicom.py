"""Single-file DICOM: grayscale or colour, one frame (an image) or several (a volume).

Parsing: a PS3.10 file (preamble, ``DICM``, file meta) or, for older archives, a bare dataset
without file meta (read with pydicom's ``force=True``; its transfer syntax is inferred from how
the dataset is encoded: implicit/explicit VR, little/big endian). A bare dataset with compressed
(encapsulated) pixel data names no codec and is refused; so is a file that is not DICOM at all.

Decoding: native and compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE) through pydicom's decoders, with the ``pylibjpeg`` plugins that
``requirements.txt`` installs.

Grayscale values: stored pixels -> modality LUT (RescaleSlope/RescaleIntercept, the Modality LUT
Sequence, or an enhanced object's per-frame Pixel Value Transformation; RT Dose grids are
multiplied by DoseGridScaling, giving Gy) -> optionally the VOI LUT / window (``apply_voi``, off
by default) -> optionally MONOCHROME1 inverted within the array's range
(``invert_monochrome1``, a display step, off by default). float32.

Colour (RGB, YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT, PALETTE COLOR): converted to RGB
(pydicom's YCbCr conversion, or its palette LUT), channels last, in the decoded dtype (uint8,
or uint16 for 16-bit data and palettes); no modality LUT applies to colour.

Layout and geometry: one frame gives ``[H, W]`` (or ``[H, W, 3]``), row 0 = top, spacing
``(row, column)`` from PixelSpacing (ImagerPixelSpacing for projection radiographs without it;
1 mm when neither is present), the affine through ImageOrientationPatient/ImagePositionPatient
where present (else ``diag(spacing, 1)``). Several frames give a volume ``[H, W, F]`` (or
``[H, W, F, 3]``), see :mod:`.dicom_frames` for frame order, spacing and affine.
"""
import io
import os
from typing import Optional, Tuple

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .base import ImageMeta, ImageReadError, ImageReader, PathLike, axcodes, read_file_bytes
from .dicom_frames import frame_rescale, multiframe_geometry
from .dicom_geometry import (
    orientation_cosines,
    pixel_spacing,
    position_vector,
    single_slice_affine,
    slice_thickness,
)
from .registry import register_reader

__all__ = [
    "COLOUR_PHOTOMETRICS",
    "DicomReader",
    "decoded_frames",
    "modality_values",
    "parse_dicom",
]

GRAYSCALE_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
_PIXEL_KEYS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_ENCODING_SYNTAX = {  # (implicit VR, little endian) -> the transfer syntax of a bare dataset
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


@register_reader
class DicomReader(ImageReader):
    """A DICOM image file (``.dcm``, ``.dicom`` or any file with ``DICM``); module docstring.

    Args:
        apply_voi: apply the VOI LUT Sequence or first WindowCenter/WindowWidth (display
            values; grayscale only).
        invert_monochrome1: invert MONOCHROME1 images (``max + min - v``), so larger values
            always display brighter.
    """

    name = "dicom"
    endings = (".dcm", ".dicom")

    def __init__(self, *, apply_voi: bool = False, invert_monochrome1: bool = False):
        self.apply_voi = apply_voi
        self.invert_monochrome1 = invert_monochrome1

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """The values ([H, W], [H, W, 3], [H, W, F] or [H, W, F, 3]) and their meta."""
        return self.decode(path, read_file_bytes(path))

    def decode(self, path: PathLike, data: bytes) -> Tuple[np.ndarray, ImageMeta]:
        """:meth:`read` on the file's content ``data`` (``path`` names it in errors)."""
        dataset = parse_dicom(path, data)
        frames = decoded_frames(path, dataset)
        colour = frames.ndim == 4
        values = frames if colour else self._grayscale_values(path, dataset, frames)
        source = os.fspath(path)
        if len(frames) > 1:
            order, spacing, affine = multiframe_geometry(path, dataset, len(frames))
            values = np.moveaxis(values[order], 0, 2)  # [F, H, W(, 3)] -> [H, W, F(, 3)]
            dims = 3
        else:
            values = values[0]
            spacing = pixel_spacing(path, dataset)
            affine = _slice_affine(path, dataset, spacing)
            dims = 2
        meta = ImageMeta(spacing=spacing, affine=affine, orientation=axcodes(affine, dims),
                         original_dtype=frames.dtype, spatial_dims=dims, source=source,
                         channel_order="RGB" if colour else None)
        return np.ascontiguousarray(values), meta

    def _grayscale_values(self, path: PathLike, dataset: pydicom.Dataset,
                          frames: np.ndarray) -> np.ndarray:
        """float32 [F, H, W] modality (or display) values of the stored ``frames``."""
        values = np.stack([modality_values(path, dataset, frame, index, apply_voi=self.apply_voi)
                           for index, frame in enumerate(frames)])
        if self.invert_monochrome1 and dataset.PhotometricInterpretation == "MONOCHROME1":
            values = values.max() + values.min() - values
        return values.astype(np.float32)


def parse_dicom(path: PathLike, data: Optional[bytes] = None) -> pydicom.Dataset:
    """Parse a DICOM file (or its content ``data``), requiring pixel data.

    A file without the PS3.10 preamble and file meta is parsed as a bare dataset and given
    the transfer syntax its encoding shows (module docstring).

    Raises:
        ImageReadError: not DICOM; no pixel data (e.g. a report or DICOMDIR); a bare dataset
            with compressed pixel data.
    """
    source = os.fspath(path)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data) if data is not None else source)
    except InvalidDicomError:
        dataset = _parse_bare_dataset(source, data)
    except (EOFError, OSError, ValueError) as e:
        raise ImageReadError(f"{source}: not a readable DICOM file ({e}); it is truncated or "
                             "corrupt: re-export or re-copy it.") from e
    if not any(key in dataset for key in _PIXEL_KEYS):
        raise ImageReadError(
            f"{source}: DICOM file without pixel data (SOP class "
            f"{dataset.get('SOPClassUID', 'unknown')}), e.g. a report, RT plan, waveform or "
            "DICOMDIR: it is not an image; remove it from the dataset."
        )
    if "TransferSyntaxUID" not in dataset.file_meta:
        _set_inferred_transfer_syntax(source, dataset)
    return dataset


def _parse_bare_dataset(source: str, data: Optional[bytes]) -> pydicom.Dataset:
    """A dataset without the preamble and file meta, or ImageReadError if it is not DICOM."""
    not_dicom = (f"{source}: not a readable DICOM file: it has neither the DICOM preamble "
                 "('DICM' after 128 bytes) nor a valid bare DICOM dataset. Re-export it, or rename "
                 "it if it is not DICOM.")
    try:
        dataset = pydicom.dcmread(io.BytesIO(data) if data is not None else source, force=True)
        keywords = {element.keyword for element in dataset}  # parses every element
    except Exception as e:  # pydicom raises many types on non-DICOM bytes
        raise ImageReadError(f"{not_dicom} ({type(e).__name__}: {e})") from e
    if not keywords & {"SOPClassUID", "Rows", "PixelData", "Modality"}:
        raise ImageReadError(not_dicom)
    return dataset


def _set_inferred_transfer_syntax(source: str, dataset: pydicom.Dataset) -> None:
    """Give a dataset without a Transfer Syntax UID the one its encoding shows."""
    pixel_key = next(key for key in _PIXEL_KEYS if key in dataset)
    if dataset[pixel_key].is_undefined_length:
        raise ImageReadError(
            f"{source}: compressed (encapsulated) pixel data but no file meta naming the transfer "
            "syntax, so the codec is unknown; re-export the file with its DICOM header (e.g. "
            "dcmtk's dcmconv, or pydicom's save_as with file_meta.TransferSyntaxUID)."
        )
    syntax = _ENCODING_SYNTAX.get(tuple(dataset.original_encoding))
    if syntax is None:
        raise ImageReadError(f"{source}: unknown dataset encoding {dataset.original_encoding}; "
                             "re-export the file with its DICOM header.")
    if not hasattr(dataset, "file_meta") or dataset.file_meta is None:
        dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax


def decoded_frames(path: PathLike, dataset: pydicom.Dataset) -> np.ndarray:
    """The decoded pixels with a frame axis: grayscale [F, H, W] stored values, colour
    [F, H, W, 3] RGB.

    Raises:
        ImageReadError: an unknown PhotometricInterpretation, or pixel data that cannot be
            decoded.
    """
    photometric = dataset.get("PhotometricInterpretation")
    if photometric not in GRAYSCALE_PHOTOMETRICS + COLOUR_PHOTOMETRICS:
        raise ImageReadError(
            f"{os.fspath(path)}: PhotometricInterpretation is {photometric!r}; vertspine reads "
            f"{GRAYSCALE_PHOTOMETRICS + COLOUR_PHOTOMETRICS}. Fix the header or convert the file."
        )
    try:
        pixels = dataset.pixel_array  # YBR_* are converted to RGB by pydicom's decoders
        if photometric == "PALETTE COLOR":
            pixels = apply_color_lut(pixels, dataset)
    except Exception as e:  # pydicom raises many types here; re-raised with the file named
        raise ImageReadError(
            f"{os.fspath(path)}: cannot decode the DICOM pixel data (transfer syntax "
            f"{dataset.file_meta.get('TransferSyntaxUID', 'unknown')}): {e}. The decoders of "
            "requirements.txt (pylibjpeg, -libjpeg, -openjpeg, -rle) read JPEG, JPEG-LS, JPEG 2000 "
            "and RLE; check them with `python -m vertspine.collect_env`, or decompress the file "
            "(dcmtk's dcmdjpeg, gdcmconv --raw)."
        ) from e
    colour = photometric in COLOUR_PHOTOMETRICS
    single_frame_dims = 3 if colour else 2
    if pixels.ndim == single_frame_dims:
        pixels = pixels[None]
    if pixels.ndim != single_frame_dims + 1:
        raise ImageReadError(f"{os.fspath(path)}: decoded pixel array of shape {pixels.shape} "
                             f"does not match PhotometricInterpretation {photometric!r}.")
    return pixels


def modality_values(path: PathLike, dataset: pydicom.Dataset, pixels: np.ndarray,
                    frame: int = 0, *, apply_voi: bool) -> np.ndarray:
    """Stored grayscale ``pixels`` of ``frame`` -> modality LUT -> (if ``apply_voi``) VOI LUT /
    window; float64, same shape.

    Raises:
        ImageReadError: an invalid LUT or window (e.g. WindowWidth < 1).
    """
    try:
        rescale = frame_rescale(dataset, frame)
        if rescale is not None:
            values = pixels * rescale[0] + rescale[1]
        else:
            values = apply_modality_lut(pixels, dataset)
        if dataset.get("DoseGridScaling") not in (None, ""):
            values = values * float(dataset.DoseGridScaling)
        if apply_voi:
            values = apply_voi_lut(values, dataset)
    except (AttributeError, ValueError) as e:  # e.g. WindowWidth < 1, incomplete LUT
        raise ImageReadError(
            f"{os.fspath(path)}: invalid modality/VOI LUT or window ({e}); fix the DICOM "
            "header, or read it with read_dicom(path, apply_voi=False)."
        ) from e
    return np.asarray(values, dtype=np.float64)


def _slice_affine(path: PathLike, dataset: pydicom.Dataset,
                  spacing: Tuple[float, float]) -> np.ndarray:
    """RAS affine of one slice's index (row, column, k) (see :func:`single_slice_affine`)."""
    cosines = orientation_cosines(path, dataset.get("ImageOrientationPatient"))
    position = dataset.get("ImagePositionPatient")
    return single_slice_affine(cosines, None if position is None else
                               position_vector(path, position), spacing, slice_thickness(dataset))
