"""DICOM to PNG for VinDr-SpineXR: one pipeline, documented step by step.

:func:`dicom_to_png_array` does, for every image:

1. :func:`vertspine.data.read_dicom` (the reader training uses for DICOM): stored pixels ->
   modality LUT (RescaleSlope/Intercept) -> VOI LUT Sequence or the first
   WindowCenter/WindowWidth (values outside the window saturate) -> MONOCHROME1 inverted, so
   bone is bright for both photometric interpretations. float32 [H, W]. Compressed transfer
   syntaxes and files without the DICOM file meta read as any other (:mod:`vertspine.data.
   readers.dicom`); a colour DICOM (not part of the release) keeps its colour, written as an
   RGB PNG.
2. Optional downscaling when ``max_size`` > 0 and the longest side exceeds it: the longest side
   becomes ``max_size``, the other ``round(side * max_size / longest)``, with
   ``cv2.INTER_AREA`` on the float values (before quantisation, so no banding is added).
3. Quantisation by linear min-max of the image (rounded half up):
   8 bit (default) with :func:`vertspine.data.image_io.min_max_to_uint8`, or 16 bit to
   0..65535 by the same formula. vertspine's ``read_image`` min-maxes a 16-bit PNG to 8 bit
   when training, so both depths train alike; 16 bit keeps the window's precision on disk.

PNGs are single-channel (colour: 3 channels) and written atomically. DICOMs are found by walking a folder
recursively for ``*.dicom``/``*.dcm``; the file stem is the image_id. Headers (size on reuse,
PatientID for the validation split) are read without the pixel data, from files with or without
the PS3.10 preamble and file meta.
"""
import os
from typing import Dict, List, Mapping, Sequence, Tuple

import cv2
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from ..image_io import min_max_to_uint8, min_max_to_unsigned, read_dicom
from .annotations import VinDrDataError

__all__ = [
    "DICOM_SUFFIXES",
    "dicom_to_png_array",
    "find_dicoms",
    "output_size",
    "read_header",
    "read_patient_ids",
]

DICOM_SUFFIXES = (".dicom", ".dcm")
BIT_DEPTHS = (8, 16)


def find_dicoms(folder: str) -> Dict[str, str]:
    """Every DICOM under ``folder`` (recursively), keyed by file stem (= image_id).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        VinDrDataError: two files share a stem.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"DICOM folder {folder} does not exist: the release keeps the images in "
            "train_images/ and test_images/ next to annotations/ (pass that folder as "
            "--vindr-root)."
        )
    found: Dict[str, str] = {}
    duplicates: List[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            stem, suffix = os.path.splitext(name)
            if suffix.lower() not in DICOM_SUFFIXES:
                continue
            path = os.path.join(dirpath, name)
            if stem in found:
                duplicates.append(f"{found[stem]} and {path}")
            found[stem] = path
    if duplicates:
        raise VinDrDataError(
            f"{folder}: {len(duplicates)} DICOM file stems occur twice (the stem is the "
            f"image_id): {'; '.join(duplicates[:5])}. Remove the copies."
        )
    return found


def dicom_to_png_array(
    dicom_path: str, max_size: int = 0, bit_depth: int = 8
) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Pixels to write as PNG for one DICOM (steps in the module docstring).

    Args:
        dicom_path: a single-frame DICOM (grayscale; colour gives 3 channels).
        max_size: longest side of the output in pixels; 0 keeps the native size.
        bit_depth: 8 or 16.
    Returns:
        (uint8 or uint16 array [h, w] (colour: [h, w, 3] in OpenCV's BGR order, as
        :func:`vertspine.utils.file_io.write_png` takes it), native (H, W) of the DICOM).
    Raises:
        ValueError: bad ``max_size`` or ``bit_depth``.
        ImageReadError: the DICOM cannot be decoded (the message names it).
    """
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {bit_depth}.")
    if max_size < 0:
        raise ValueError(f"max_size must be >= 0 (0 = native size), got {max_size}.")
    values = read_dicom(dicom_path)
    native = values.shape[:2]
    height, width = output_size(native, max_size)
    if (height, width) != native:
        values = cv2.resize(values, (width, height), interpolation=cv2.INTER_AREA)
    pixels = min_max_to_uint8(values) if bit_depth == 8 else min_max_to_unsigned(values, np.uint16)
    if pixels.ndim == 3:  # RGB -> BGR for OpenCV's PNG writer
        pixels = np.ascontiguousarray(pixels[:, :, ::-1])
    return pixels, native


def output_size(native: Tuple[int, int], max_size: int) -> Tuple[int, int]:
    """(h, w) after limiting the longest side of ``native`` (H, W) to ``max_size`` (0 = off)."""
    height, width = native
    longest = max(height, width)
    if max_size <= 0 or longest <= max_size:
        return height, width
    scale = max_size / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_header(path: str, keywords: Sequence[str] = ()) -> pydicom.Dataset:
    """The header of one DICOM without its pixel data; only ``keywords`` when given.

    A bare dataset (no preamble, no file meta) is read too, as :func:`read_dicom` reads it.
    """
    options = {"stop_before_pixels": True, "specific_tags": list(keywords) or None}
    try:
        return pydicom.dcmread(path, **options)
    except InvalidDicomError:
        return pydicom.dcmread(path, force=True, **options)


def read_patient_ids(dicoms: Mapping[str, str]) -> Dict[str, str]:
    """PatientID (0010,0020) of every DICOM by image_id; "" where absent or blank."""
    return {image_id: str(read_header(path, ["PatientID"]).get("PatientID") or "").strip()
            for image_id, path in dicoms.items()}
