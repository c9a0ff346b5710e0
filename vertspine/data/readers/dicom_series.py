"""A DICOM series folder (one grayscale file per slice) as one volume in modality values.

Files: every non-hidden regular file of the folder with a ``.dcm``/``.dicom`` ending or the
``DICM`` preamble (others, e.g. a ``README``, are ignored). They must form one series:

* one SeriesInstanceUID (else an error listing the series, with a file of each);
* the same Rows x Columns and ImageOrientationPatient in every file;
* ImagePositionPatient in every file, at distinct, evenly spaced positions along the slice
  normal; a gap larger than the others (a missing slice) or a duplicated position is an error
  naming the files on either side.

Slices are sorted by their position projected on the normal ``column direction x row
direction`` (:func:`.dicom_geometry.slice_normal`). Array: float32 ``[rows, columns, slices]`` (each
slice as :mod:`.dicom` reads it, with its own modality LUT), i.e. index ``(i, j, k)`` = (row,
column, slice), a right-handed frame, as nibabel's DICOM wrappers index a series. (SimpleITK's
``GetArrayFromImage`` gives ``[slice, row, column]`` with the slices in the opposite order.)
Spacing: ``(PixelSpacing row, PixelSpacing column, distance between consecutive positions)``.
Affine: column directions from ImageOrientationPatient times spacing, the slice step
``(last position - first position) / (slices - 1)`` (so a gantry tilt gives a sheared affine,
as in dcm2niix), the first slice's position as origin; converted from DICOM LPS to RAS.
"""
import logging
import os
from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np
import pydicom

from .base import ImageMeta, ImageReadError, ImageReader, PathLike, axcodes
from .dicom import DicomReader, decoded_frames, modality_values, parse_dicom
from .dicom_geometry import (
    orientation_cosines,
    pixel_spacing,
    position_vector,
    series_affine,
    slice_thickness,
    sort_along_normal,
)
from .registry import DICOM_SERIES_READER, has_dicom_preamble, register_reader

__all__ = ["DicomSeriesReader"]

logger = logging.getLogger(__name__)

_LISTED = 5  # files quoted per error
_ORIENTATION_TOLERANCE = 1e-4  # direction cosines that differ by more are another orientation


@register_reader
class DicomSeriesReader(ImageReader):
    """A folder of single-frame DICOM files of one series (rules in the module docstring)."""

    name = DICOM_SERIES_READER
    endings = ()  # chosen for folders, not by ending

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """float32 [rows, columns, slices] modality values and their meta."""
        folder = os.fspath(path)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"DICOM series folder not found: {folder}")
        files = _dicom_files(folder)
        datasets = [(f, parse_dicom(f)) for f in files]
        _check_one_series(folder, datasets)
        _check_same_size(folder, datasets)
        cosines = _common_orientation(folder, datasets)
        names = [os.path.basename(f) for f, _ in datasets]
        positions = [position_vector(f, d.ImagePositionPatient) for f, d in datasets]
        # one slice: its step along the normal is the first file's slice thickness
        order, step = sort_along_normal(folder, names, positions, cosines,
                                        slice_thickness(datasets[0][1]))
        ordered = [datasets[i] for i in order]
        spacing = pixel_spacing(ordered[0][0], ordered[0][1], required=True)
        pixels = [_single_grayscale_frame(f, d) for f, d in ordered]
        volume = np.stack([modality_values(f, d, p, apply_voi=False)
                           for (f, d), p in zip(ordered, pixels)], axis=-1).astype(np.float32)
        affine = series_affine(cosines, positions[order[0]], spacing, step)
        meta = ImageMeta(spacing=(*spacing, float(np.linalg.norm(step))), affine=affine,
                         orientation=axcodes(affine, 3), original_dtype=pixels[0].dtype,
                         spatial_dims=3, source=folder)
        return volume, meta


def _dicom_files(folder: str) -> List[str]:
    """The folder's DICOM files, sorted by name (hidden and non-DICOM files skipped)."""
    paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if not n.startswith(".")]
    paths = [p for p in paths if os.path.isfile(p)]
    files = [p for p in paths if p.lower().endswith(DicomReader.endings) or has_dicom_preamble(p)]
    if len(files) < len(paths):
        logger.info("%s: %d files that are not DICOM are ignored.", folder,
                    len(paths) - len(files))
    if not files:
        raise ImageReadError(f"{folder}: no DICOM file (.dcm, .dicom or with the 'DICM' "
                             "preamble) in the folder; point at the folder of one series.")
    return files


def _check_one_series(folder: str, datasets: List[Tuple[str, pydicom.Dataset]]) -> None:
    """ImageReadError when the files belong to several SeriesInstanceUIDs."""
    series: Dict[str, List[str]] = defaultdict(list)
    for file, dataset in datasets:
        series[str(dataset.get("SeriesInstanceUID", "<missing>"))].append(file)
    if len(series) > 1:
        listed = "; ".join(f"{uid}: {len(f)} files, e.g. {os.path.basename(f[0])}"
                           for uid, f in sorted(series.items()))
        raise ImageReadError(
            f"{folder}: the files belong to {len(series)} series (SeriesInstanceUID {listed}); "
            "a volume is one series: move each series into its own folder."
        )


def _check_same_size(folder: str, datasets) -> None:
    """ImageReadError when Rows x Columns differ between files, with files of each size."""
    values: Dict[object, List[str]] = defaultdict(list)
    for file, dataset in datasets:
        values[(int(dataset.Rows), int(dataset.Columns))].append(os.path.basename(file))
    if len(values) > 1:
        listed = "; ".join(f"{v}: {f[:_LISTED]}" for v, f in values.items())
        raise ImageReadError(
            f"{folder}: slices of different sizes (Rows x Columns {listed}); every slice of a "
            "volume must have one size: remove the files that do not belong."
        )


def _common_orientation(folder: str, datasets) -> np.ndarray:
    """The [2, 3] direction cosines shared by every slice (ImageReadError if absent/differing)."""
    cosines = []
    for file, dataset in datasets:
        value = orientation_cosines(file, dataset.get("ImageOrientationPatient"))
        if value is None or "ImagePositionPatient" not in dataset:
            raise ImageReadError(
                f"{file}: no ImageOrientationPatient/ImagePositionPatient; slices cannot be "
                "ordered into a volume without them. Use a series with patient geometry."
            )
        cosines.append(value)
    differing = [os.path.basename(f) for (f, _), c in zip(datasets, cosines)
                 if np.abs(c - cosines[0]).max() > _ORIENTATION_TOLERANCE]
    if differing:
        raise ImageReadError(
            f"{folder}: slices of different ImageOrientationPatient ({differing[:_LISTED]} differ "
            f"from {os.path.basename(datasets[0][0])}: {cosines[0].ravel().tolist()}); every "
            "slice of a volume must share one orientation: remove the files that do not belong."
        )
    return cosines[0]


def _single_grayscale_frame(file: str, dataset: pydicom.Dataset) -> np.ndarray:
    """The stored [H, W] pixels of one slice file (ImageReadError for colour or multi-frame)."""
    frames = decoded_frames(file, dataset)
    if frames.ndim != 3 or len(frames) != 1:
        raise ImageReadError(
            f"{file}: a series slice must be one grayscale frame, not "
            f"{dataset.PhotometricInterpretation} pixels of shape {frames.shape}; read "
            "multi-frame or colour files one by one (read_image_and_meta)."
        )
    return frames[0]
