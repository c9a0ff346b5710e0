"""Files written atomically: bytes, JSON, PNG, NIfTI and NumPy ``.npz``.

Every writer goes through :func:`atomic_write`: the content is written to a temporary file in the
target's folder, flushed to disk and renamed over the target (``os.replace`` is atomic on POSIX),
so a reader sees the old file or the new one, never half of one. A kill during a write leaves at
most a hidden ``.<name>.*.tmp`` beside the target. Files get the permissions of any file the
user creates (``0666 & ~umask``), not ``mkstemp``'s 0600.

This module is the bottom layer: data, evaluation, engine, families and tools all write through it.
"""
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["atomic_write", "file_sha256", "stale_temporary_files", "write_json", "write_npz",
           "write_nifti", "write_png"]

_TEMPORARY_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path: str, mode: str = "wb", **open_kwargs: Any) -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync it and rename it to ``path``.

    Args:
        path: the target file; its folder is created.
        mode: ``"wb"`` or ``"w"`` (text, ``open_kwargs`` e.g. ``encoding``).
    Yields:
        the open temporary file.
    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                    suffix=_TEMPORARY_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def stale_temporary_files(folder: str) -> List[str]:
    """The temporary files :func:`atomic_write` left in ``folder`` (not its subfolders) when a
    kill stopped a write: ``.<name>.<random>.tmp``. Only call this when no write is under way
    in ``folder`` (e.g. on resume, before training starts)."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        os.path.join(folder, name) for name in os.listdir(folder)
        if name.startswith(".") and name.endswith(_TEMPORARY_SUFFIX)
        and os.path.isfile(os.path.join(folder, name))
    )


def write_json(path: str, content: Any, *, indent: Optional[int] = 2,
               separators: Optional[Sequence[str]] = None) -> None:
    """Write ``content`` as JSON (UTF-8), atomically."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=indent, separators=separators)


def write_png(path: str, array: np.ndarray) -> None:
    """Write an image array as PNG, atomically.

    Args:
        path: the ``.png`` target.
        array: uint8 or uint16, [H, W] (grey) or [H, W, 3] (BGR, OpenCV's order) or [H, W, 4].
    Raises:
        ValueError: the array cannot be encoded as PNG (dtype or shape), naming ``path``.
    """
    import cv2

    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG holds uint8 or uint16 pixels, not {array.dtype}; convert "
                         "the array first (e.g. vertspine.data.image_io.min_max_to_uint8).")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an array of shape {array.shape} as PNG.")
    with atomic_write(path, "wb") as f:
        f.write(encoded.tobytes())


def write_npz(path: str, arrays: Mapping[str, np.ndarray], *, compressed: bool = True) -> None:
    """Write named arrays as a NumPy ``.npz`` archive (``savez_compressed`` by default), atomically."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_write(path, "wb") as f:
        save(f, **{name: np.asarray(value) for name, value in arrays.items()})


def write_nifti(path: str, array: np.ndarray, affine: np.ndarray, *, header: Any = None) -> None:
    """Write a volume as NIfTI (``.nii`` or ``.nii.gz``, gzip chosen by the ending), atomically.

    Args:
        path: the target, ending in ``.nii`` or ``.nii.gz``.
        array: the voxels in the affine's index order ([X, Y, Z] for an ``i, j, k`` affine).
        affine: [4, 4] voxel index -> world (RAS+ millimetres), as nibabel's ``img.affine``.
            Without ``header`` it is written as both the sform and the qform (code 1), so
            spacing and orientation survive.
        header: optional nibabel ``Nifti1Header``/``Nifti2Header`` of the volume the array was
            computed from (a prediction's input): it is kept as it is (its qform and sform with
            their codes, units, description; NIfTI-2 stays NIfTI-2), except the data type and
            shape, which are the array's, and the intensity scaling, which is reset. ``affine``
            must then be the header's (``img.affine``).
    Raises:
        ValueError: ``path`` has another ending, ``affine`` is not 4x4 and finite, or it
            differs from the header's.
    """
    import nibabel as nib

    if not path.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{path}: a NIfTI file name ends in .nii or .nii.gz.")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ValueError(f"{path}: the affine must be a finite 4x4 matrix, got {affine.shape}.")
    array = np.asarray(array)
    if header is None:
        image = nib.Nifti1Image(array, affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    else:
        if not np.allclose(header.get_best_affine(), affine, atol=1e-5):
            raise ValueError(f"{path}: the affine {affine.round(4).tolist()} is not the "
                             f"header's {header.get_best_affine().round(4).tolist()}; pass the "
                             "affine of the image the header came from (img.affine).")
        header = header.copy()
        header.set_data_dtype(array.dtype)
        header.set_slope_inter(None, None)
        image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        image = image_class(array, affine, header)
    data = image.to_bytes()
    if path.endswith(".gz"):
        import gzip

        data = gzip.compress(data, compresslevel=6, mtime=0)
    with atomic_write(path, "wb") as f:
        f.write(data)


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
