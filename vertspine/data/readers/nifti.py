"""NIfTI (``.nii``, ``.nii.gz``) through nibabel: the volume as the file stores it.

Array: ``np.asanyarray(img.dataobj)``, i.e. the stored voxels with the header's
``scl_slope``/``scl_inter`` applied (float when they scale, else the stored integer or float
dtype), axes ``[I, J, K]`` in the affine's index order. Meta: ``affine`` = ``img.affine``
(nibabel's choice of sform/qform, RAS+ mm), spacing = the header's zooms, orientation =
``nibabel.aff2axcodes(affine)``. 2D NIfTI files give ``spatial_dims`` 2; files with more than 3
dimensions (time, channels) are not read. A zero or negative pixdim is an error (nibabel
would silently take 1 mm), as is a singular affine.
"""
import os
import zlib
from typing import Tuple

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

from .base import ImageMeta, ImageReadError, ImageReader, PathLike, axcodes, check_spacing
from .registry import register_reader

__all__ = ["NiftiReader"]

_DECODE_ERRORS = (ImageFileError, EOFError, OSError, ValueError, zlib.error)


@register_reader
class NiftiReader(ImageReader):
    """A NIfTI-1/2 image of 2 or 3 dimensions."""

    name = "nifti"
    endings = (".nii", ".nii.gz")

    def read(self, path: PathLike) -> Tuple[np.ndarray, ImageMeta]:
        """[I, J, K] (or [I, J]) voxels in their stored values, and their meta."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"NIfTI file not found: {os.fspath(path)}")
        try:
            image = nib.load(os.fspath(path))
            array = np.asanyarray(image.dataobj)
        except _DECODE_ERRORS as e:
            raise ImageReadError(
                f"{os.fspath(path)}: not a readable NIfTI file ({type(e).__name__}: {e}); the "
                "file is truncated or corrupt, re-export or re-copy it."
            ) from e
        if array.ndim not in (2, 3):
            raise ImageReadError(
                f"{os.fspath(path)}: a NIfTI image of shape {array.shape}; only 2D and 3D images "
                "are read. Save one 3D file per channel or time point (nnU-Net's _0000 layout)."
            )
        spatial_dims = array.ndim
        spacing = check_spacing(path, _stored_zooms(path, image)[:spatial_dims], spatial_dims,
                                "fix the header's pixdim (nibabel: img.header.set_zooms).")
        affine = np.asarray(image.affine, dtype=np.float64)
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ImageReadError(
                f"{os.fspath(path)}: the affine {affine.round(4).tolist()} is singular (an axis "
                "without direction); fix the header's sform/qform (nibabel: img.set_sform)."
            )
        meta = ImageMeta(spacing=spacing, affine=affine, orientation=axcodes(affine, spatial_dims),
                         original_dtype=image.get_data_dtype(), spatial_dims=spatial_dims,
                         source=os.fspath(path))
        return array, meta


def _stored_zooms(path: PathLike, image) -> Tuple[float, ...]:
    """The header's zooms as stored: nibabel's loader replaces a zero pixdim by 1."""
    with nib.openers.ImageOpener(os.fspath(path)) as f:
        return type(image.header).from_fileobj(f, check=False).get_zooms()
