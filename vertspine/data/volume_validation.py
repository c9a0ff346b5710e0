"""Reading and validating the cases of a volume dataset into detectron2 records.

:func:`load_volume_cases` reads every image and label once
(:func:`vertspine.data.readers.read_volume`) and checks, each failure an error naming the
file(s) and the fix (:class:`~vertspine.data.coco_validation.DatasetValidationError`):

* a file that is not a 3D volume (a 2D NIfTI or ``.npy``), named with the dataset and case;
  unreadable files (a truncated ``.nii.gz``) raise the reader's
  :class:`~vertspine.data.readers.ImageReadError` prefixed with the dataset and case;
* image or label with NaN/infinite values;
* an image whose voxels all hold one value (e.g. an all-zero export): nothing to segment,
  and intensity scaling by percentiles would divide by zero;
* label shape or affine (beyond 1e-3 mm) different from its image's (both files named);
* label values that are not integers in ``0..num_classes`` (or ``ignore_label``);
* zero or negative spacing (raised by the reader as
  :class:`~vertspine.data.readers.ImageReadError`);
* a label without foreground (no voxel in ``1..num_classes``), by ``empty_labels``:
  ``"skip"`` (the case is left out and the count logged as a warning, since Dice is undefined
  on it), ``"keep"`` (negative cases for training) or ``"error"``.
"""
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .coco_validation import DatasetValidationError
from .readers import ImageMeta, ImageReadError, read_image_and_meta

__all__ = ["EMPTY_LABEL_POLICIES", "Case", "load_volume_cases"]

logger = logging.getLogger(__name__)

EMPTY_LABEL_POLICIES = ("skip", "keep", "error")
_AFFINE_TOLERANCE = 1e-3  # mm: label and image affines may differ by float rounding only
_LISTED = 5  # cases quoted per message

Case = Tuple[str, str, Optional[str]]  # (case name, image path, label path or None)


def load_volume_cases(
    cases: Sequence[Case],
    *,
    num_classes: int,
    ignore_label: Optional[int] = None,
    empty_labels: str = "skip",
    spacing: Optional[Sequence[float]] = None,
    dataset_name: str = "",
) -> List[Dict[str, Any]]:
    """Read and validate every case, returning its record (see the module docstring).

    Args:
        cases: (case name, image path, label path or None).
        num_classes: K, the number of foreground classes: labels are 0..K.
        ignore_label: a label value outside 0..K excluded from losses and metrics, or None.
        empty_labels: what to do with a label without foreground, one of
            :data:`EMPTY_LABEL_POLICIES`.
        spacing: the spacing of ``.npy`` files (passed to their reader); None for files that
            store their geometry (NIfTI).
        dataset_name: named in messages.
    Returns:
        records in the order of ``cases`` (skipped ones left out).
    Raises:
        DatasetValidationError: a check failed (the first failing case is reported).
        ImageReadError, FileNotFoundError: a file cannot be read.
    """
    options = {} if spacing is None else {"spacing": tuple(spacing)}
    records, empty = [], []
    for case, image_path, label_path in cases:
        image, meta = _read(image_path, options, dataset_name, case)
        _check_finite(image_path, image)
        _check_not_constant(image_path, image)
        record = {
            "file_name": os.path.abspath(image_path),
            "image_id": case,
            "spacing": [float(s) for s in meta.spacing],
            "affine": meta.affine.tolist(),
            "shape": [int(n) for n in image.shape],
            "spatial_dims": 3,
        }
        if label_path is not None:
            label, label_meta = _read(label_path, options, dataset_name, case)
            _check_label(image_path, label_path, image, meta.affine, label, label_meta.affine,
                         num_classes, ignore_label)
            if not _has_foreground(label, num_classes):
                if empty_labels == "error":
                    raise DatasetValidationError(
                        f"Dataset '{dataset_name}': label {label_path} has no foreground voxel "
                        f"(no value in 1..{num_classes}); remove the case, or register with "
                        "empty_labels='keep' to train on negative cases.")
                empty.append(case)
                if empty_labels == "skip":
                    continue
            record["label_file"] = os.path.abspath(label_path)
        records.append(record)
    if empty:
        logger.warning("Dataset '%s': %d of %d labels have no foreground, e.g. %s; %s.",
                       dataset_name, len(empty), len(cases), empty[:_LISTED],
                       "skipped" if empty_labels == "skip" else "kept")
    return records


def _read(path: str, options: Dict[str, Any], dataset_name: str, case: str
          ) -> Tuple[np.ndarray, ImageMeta]:
    """A 3D volume and its meta; errors name the dataset, the case and the file."""
    try:
        array, meta = read_image_and_meta(path, **options)
    except ImageReadError as e:
        raise ImageReadError(f"Dataset '{dataset_name}', case '{case}': {e}") from e
    if meta.spatial_dims != 3:
        raise DatasetValidationError(
            f"Dataset '{dataset_name}', case '{case}': {path} is a {meta.spatial_dims}D image of "
            f"shape {tuple(array.shape)}, not a 3D volume; a volume dataset needs 3D files: save "
            "it as a volume (a single slice as shape (H, W, 1) with its slice thickness in the "
            "header) or remove the case.")
    return array, meta


def _check_not_constant(path: str, array: np.ndarray) -> None:
    """DatasetValidationError when every voxel of an image holds the same value."""
    if array.size and array.min() == array.max():
        raise DatasetValidationError(
            f"{path}: every voxel is {array.flat[0].item()!r} (a blank volume, e.g. a failed "
            "export): there is nothing to segment and percentile intensity scaling would divide "
            "by zero; re-export the image or remove the case.")


def _check_finite(path: str, array: np.ndarray) -> None:
    """DatasetValidationError when a float volume holds NaN or infinity."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise DatasetValidationError(
            f"{path}: {bad} NaN or infinite voxels; fix the file (e.g. np.nan_to_num with the "
            "background value) or remove the case.")


def _check_label(image_path: str, label_path: str, image: np.ndarray, image_affine: np.ndarray,
                 label: np.ndarray, label_affine: np.ndarray, num_classes: int,
                 ignore_label: Optional[int]) -> None:
    """DatasetValidationError when the label does not fit its image or holds bad values."""
    if label.shape != image.shape:
        raise DatasetValidationError(
            f"Label {label_path} has shape {label.shape} but its image {image_path} has shape "
            f"{image.shape}; a label must be on the image's voxel grid (resample it with "
            "nearest-neighbour interpolation onto the image).")
    if not np.allclose(label_affine, image_affine, rtol=0, atol=_AFFINE_TOLERANCE):
        raise DatasetValidationError(
            f"Label {label_path} has affine {np.round(label_affine, 4).tolist()} but its image "
            f"{image_path} has {np.round(image_affine, 4).tolist()}; the label must be on the "
            "image's grid (resample it onto the image, or copy the image's header if only the "
            "header is wrong).")
    _check_finite(label_path, label)
    if label.dtype.kind == "b":
        return
    valid = (label >= 0) & (label <= num_classes)
    if label.dtype.kind == "f":
        valid &= label == np.floor(label)
    if ignore_label is not None:
        valid |= label == ignore_label
    if valid.all():
        return
    ignored = f" or ignore_label {ignore_label}" if ignore_label is not None else ""
    raise DatasetValidationError(
        f"Label {label_path} has values {np.unique(label[~valid])[:10].tolist()} that are not "
        f"integers in 0..{num_classes} (0 background, 1..{num_classes} the class_names){ignored}; "
        "register the dataset with the class_names its labels use, or fix the label file.")


def _has_foreground(label: np.ndarray, num_classes: int) -> bool:
    """Whether any voxel holds a class label 1..K (a validated label)."""
    return bool(np.any((label > 0) & (label <= num_classes)))
