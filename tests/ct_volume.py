"""A CT-like NIfTI volume for the volume tests, and nibabel/numpy references of its preprocessing.

The volume: int16 Hounsfield units uniformly random in -1000..1500 (so every patch is a unique
pattern that can be located in the whole volume), a labelled block, anisotropic voxels
(0.8 x 0.8 x 2.5 mm) and an LPS-like affine (axes 0 and 1 run to the left and posterior), so
reorienting to RAS flips them.
"""
import os
from typing import Tuple

import nibabel as nib
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SHAPE = (40, 36, 24)
SPACING = (0.8, 0.8, 2.5)
HU_RANGE = (-1000, 1500)
BLOB = (slice(16, 24), slice(14, 22), slice(10, 14))  # labelled voxels, file index order


def ct_affine() -> np.ndarray:
    """Voxel index -> RAS mm: x and y decrease along axes 0 and 1 (LPS-like), z increases."""
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])
    affine[:3, 3] = (120.0, 100.0, -50.0)
    return affine


def write_ct_volume(folder: str, name: str = "ct0", seed: int = 0) -> Tuple[str, str]:
    """Write ``<folder>/<name>.nii.gz`` (int16 HU) and ``<folder>/labels/<name>.nii.gz``
    (uint8, 1 on :data:`BLOB`); returns their paths (image, label)."""
    os.makedirs(os.path.join(folder, "labels"), exist_ok=True)
    hu = np.random.default_rng(seed).integers(HU_RANGE[0], HU_RANGE[1] + 1, SHAPE)
    label = np.zeros(SHAPE, np.uint8)
    label[BLOB] = 1
    paths = (os.path.join(folder, f"{name}.nii.gz"),
             os.path.join(folder, "labels", f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(hu.astype(np.int16), ct_affine()), paths[0])
    nib.save(nib.Nifti1Image(label, ct_affine()), paths[1])
    return paths


def canonical(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """nibabel's RAS reorientation of a file: (array in its stored values, affine)."""
    image = nib.as_closest_canonical(nib.load(path))
    return np.asanyarray(image.dataobj), image.affine


def window(hu: np.ndarray, a_min: float = -1000.0, a_max: float = 1000.0) -> np.ndarray:
    """The CT window as numpy computes it: a_min..a_max -> 0..1, clipped, float32."""
    return np.clip((hu.astype(np.float64) - a_min) / (a_max - a_min), 0, 1).astype(np.float32)


def locate(patch: np.ndarray, volume: np.ndarray) -> Tuple[int, ...]:
    """The one offset at which ``patch`` [*roi] equals a window of ``volume``.

    Raises:
        AssertionError: no offset or several offsets match.
    """
    windows = sliding_window_view(volume, patch.shape)
    corner = np.argwhere(np.abs(windows[..., 0, 0, 0] - patch[0, 0, 0]) < 1e-6)
    hits = [tuple(int(i) for i in c) for c in corner
            if np.allclose(windows[tuple(c)], patch, rtol=0, atol=1e-6)]
    assert len(hits) == 1, f"the patch matches {len(hits)} windows of the volume"
    return hits[0]
