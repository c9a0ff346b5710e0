"""Readers by format, like nnU-Net v2's ``imageio``: one class per format, chosen by file ending.

    array, meta = read_image_and_meta("ct/case_001.nii.gz")   # any format
    volume, meta = read_volume("ct/case_001.nii.gz")          # the same, 3D required
    meta.spacing, meta.affine, meta.orientation                # (1.5, 0.8, 0.8), [4, 4], "RAS"

Every reader returns ``(array, ImageMeta)`` with the file's real values (Hounsfield units,
16-bit intensities, floats) and its geometry. Volumes: the array's axes are the affine's
voxel-index axes ``(i, j, k)`` in order, the affine maps them to RAS+ mm (nibabel's
convention; DICOM's LPS is converted). The 2D detection path converts to uint8 afterwards, in
one explicit step (:func:`vertspine.data.image_io.to_display_uint8`).

Formats (:func:`supported_endings`): PNG/JPEG/TIFF/BMP (:class:`RasterReader`), DICOM single
file (:class:`DicomReader`: grayscale or colour, compressed or not, with or without file meta;
a multi-frame file is a volume) and series folder (:class:`DicomSeriesReader`), NIfTI
(:class:`NiftiReader`), NumPy ``.npy`` (:class:`NpyReader`) and CVPR24-MedSAM ``.npz``
(:class:`NpzReader`). A new format: subclass :class:`ImageReader` and decorate it with
:func:`register_reader`.
"""
from .base import ImageMeta, ImageReadError, ImageReader
from .registry import (
    READERS,
    read_image_and_meta,
    read_volume,
    reader_for,
    register_reader,
    supported_endings,
)
from .raster import RasterReader  # registers "raster"
from .dicom import DicomReader  # registers "dicom"
from .dicom_series import DicomSeriesReader  # registers "dicom_series"
from .nifti import NiftiReader  # registers "nifti"
from .numpy_files import NpyReader, NpzReader  # registers "npy", "npz"

__all__ = [
    "DicomReader",
    "DicomSeriesReader",
    "ImageMeta",
    "ImageReadError",
    "ImageReader",
    "NiftiReader",
    "NpyReader",
    "NpzReader",
    "READERS",
    "RasterReader",
    "read_image_and_meta",
    "read_volume",
    "reader_for",
    "register_reader",
    "supported_endings",
]
