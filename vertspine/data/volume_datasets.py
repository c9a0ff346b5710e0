"""Volume datasets: 3D images (and label volumes) registered as detectron2 datasets.

    register_volume_folder("liver_train", "Task03_Liver/imagesTr", "Task03_Liver/labelsTr",
                           class_names=["liver", "tumour"])       # nnU-Net / MSD NIfTI pairs
    register_volume_cases("liver_val", [("a.nii.gz", "a_seg.nii.gz")], class_names=[...])
    register_npy_cases("smile", "data/SMILE", class_names=["vessel"], spacing=(1, 1, 1))
    # -> smile_train, smile_val, smile_test from <root>/<split>/<case>/{img,mask}.npy (vesselFM)

Registration is lazy: nothing is read until ``DatasetCatalog.get(name)``, which reads every
image and label once and validates them (:func:`.volume_validation.load_volume_cases`, where
the checks are listed), returning one record per case:

* ``file_name``: absolute image path; ``label_file``: absolute label path (absent when the
  dataset is unlabeled); ``image_id``: the case name;
* ``spacing``: list of 3 floats, mm per voxel in the array's axis order; ``affine``: [4, 4]
  nested lists, voxel index -> RAS+ mm (nibabel's ``img.affine``); ``shape``: the 3 array sizes;
  ``spatial_dims``: 3. For ``.npy`` cases, spacing and a ``diag(spacing, 1)`` affine come from
  the registration (the files hold none); records are the authority on geometry.

Checks at registration: ``.npy`` cases need ``spacing`` (the files store none); at load, besides
:mod:`.volume_validation`'s: an image without its label when labels are given, and one file
per case. Labels without foreground are skipped (counted in a warning) by default;
``empty_labels="keep"`` keeps them, ``"error"`` refuses them.

Metadata: ``evaluator_type`` "sem_seg_dice", ``thing_classes`` (the foreground classes),
``stuff_classes`` (background first), ``ignore_label`` when given, ``spatial_dims`` 3.
"""
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco_validation import DatasetValidationError
from .volume_validation import EMPTY_LABEL_POLICIES, Case, load_volume_cases

__all__ = [
    "VOLUME_ENDINGS",
    "register_npy_cases",
    "register_volume_cases",
    "register_volume_folder",
]

VOLUME_ENDINGS = (".nii.gz", ".nii")  # files register_volume_folder lists
NNUNET_CHANNEL_SUFFIX = "_0000"  # nnU-Net names images <case>_0000.nii.gz (single channel)
_LISTED = 5  # cases quoted per message


def register_volume_cases(
    name: str,
    cases: Sequence[Tuple[str, Optional[str]]],
    *,
    class_names: Sequence[str],
    **options: Any,
) -> None:
    """Register an explicit list of (image, label or None) volume files (lazily).

    The case name is the image's file name without its ending (and without nnU-Net's
    ``_0000``). ``options``: as :func:`register_volume_folder`.
    """
    listed = [(_case_name(image), os.path.abspath(image),
               None if label is None else os.path.abspath(label)) for image, label in cases]
    if not listed:
        raise ValueError(f"Dataset '{name}': no case given.")
    names = [case for case, _, _ in listed]
    repeated = sorted({case for case in names if names.count(case) > 1})
    if repeated:
        raise ValueError(f"Dataset '{name}': case names {repeated[:_LISTED]} repeat (the image "
                         "file name without its ending is the case name); rename the files.")
    root = os.path.commonpath([os.path.dirname(image) for _, image, _ in listed])
    _register(name, lambda: listed, class_names=class_names, roots={"image_root": root},
              **options)


def register_volume_folder(
    name: str,
    image_dir: str,
    label_dir: Optional[str] = None,
    *,
    class_names: Sequence[str],
    ignore_label: Optional[int] = None,
    empty_labels: str = "skip",
    prepare: Optional[Callable[[], Any]] = None,
    **metadata: Any,
) -> None:
    """Register a folder of NIfTI volumes, with a label folder of the same case names (lazily).

    Images ``<image_dir>/<case>.nii.gz`` (MSD) or ``<case>_0000.nii.gz`` (nnU-Net) pair with
    ``<label_dir>/<case>.nii.gz`` (``.nii`` too); hidden files (e.g. macOS ``._*``) are skipped.

    Args:
        name: dataset name for ``DATASETS.TRAIN`` / ``TEST``.
        image_dir: folder of image volumes.
        label_dir: folder of label volumes, or None for an unlabeled dataset.
        class_names: the K foreground classes (label 1..K; 0 is background).
        ignore_label: label value left out of losses and metrics, or None.
        empty_labels: labels without foreground: "skip" (logged), "keep" or "error".
        prepare: called with no arguments before each load (e.g. downloads or converts data).
        **metadata: extra ``MetadataCatalog`` entries.
    Raises:
        ValueError: bad arguments, or ``name`` is already registered.
    """
    image_dir = os.path.abspath(image_dir)
    label_dir = None if label_dir is None else os.path.abspath(label_dir)
    roots = {"image_root": image_dir, **({"label_root": label_dir} if label_dir else {})}
    _register(name, lambda: _folder_cases(name, image_dir, label_dir), class_names=class_names,
              ignore_label=ignore_label, empty_labels=empty_labels, prepare=prepare, roots=roots,
              **metadata)


def register_npy_cases(
    name_prefix: str,
    root: str,
    splits: Sequence[str] = ("train", "val", "test"),
    *,
    class_names: Sequence[str],
    spacing: Optional[Sequence[float]] = None,
    require_labels: bool = True,
    ignore_label: Optional[int] = None,
    empty_labels: str = "skip",
    prepare: Optional[Callable[[], Any]] = None,
    **metadata: Any,
) -> List[str]:
    """Register vesselFM's ``<root>/<split>/<case>/{img,mask}.npy`` layout, one dataset a split.

    Args:
        name_prefix: datasets are named ``<name_prefix>_<split>``.
        root: the folder holding the split folders.
        splits: the split folders to register.
        class_names: the K foreground classes (mask values 1..K).
        spacing: mm per voxel along the arrays' 3 axes (the files store none); required.
        require_labels: every case must have ``mask.npy`` (else cases without one are
            unlabeled records).
        ignore_label, empty_labels, prepare, **metadata: as :func:`register_volume_folder`.
    Returns:
        the registered names, in ``splits`` order.
    Raises:
        ValueError: ``spacing`` is missing or not 3 positive values, bad arguments, or a name
            is already registered.
    """
    if spacing is None:
        raise ValueError(
            f"register_npy_cases('{name_prefix}'): .npy volumes store no voxel spacing; pass "
            "spacing=(s0, s1, s2), mm along the arrays' axes, or (1, 1, 1) to work in voxels.")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"register_npy_cases('{name_prefix}'): spacing {spacing} must be 3 "
                         "positive finite values (mm along the arrays' axes).")
    names = []
    for split in splits:
        name, folder = f"{name_prefix}_{split}", os.path.join(os.path.abspath(root), split)
        _register(name, lambda n=name, f=folder: _npy_cases(n, f, require_labels),
                  class_names=class_names, ignore_label=ignore_label, empty_labels=empty_labels,
                  prepare=prepare, roots={"image_root": folder}, spacing=spacing, **metadata)
        names.append(name)
    return names


def _register(name: str, list_cases: Callable[[], List[Case]], *, class_names: Sequence[str],
              roots: Dict[str, str], ignore_label: Optional[int] = None,
              empty_labels: str = "skip", prepare: Optional[Callable[[], Any]] = None,
              spacing: Optional[Tuple[float, ...]] = None, **metadata: Any) -> None:
    """Check the arguments, then register the lazy loader and the metadata of ``name``."""
    class_names = list(class_names)
    if not class_names:
        raise ValueError(f"Dataset '{name}': class_names must name at least one foreground "
                         "class (label 1).")
    if empty_labels not in EMPTY_LABEL_POLICIES:
        raise ValueError(f"Dataset '{name}': empty_labels={empty_labels!r}; use one of "
                         f"{EMPTY_LABEL_POLICIES}.")
    if ignore_label is not None and 0 <= ignore_label <= len(class_names):
        raise ValueError(f"Dataset '{name}': ignore_label {ignore_label} is a class label "
                         f"(0..{len(class_names)}); pick a value outside, e.g. 255.")
    if name in DatasetCatalog:
        raise ValueError(f"Dataset '{name}' is already registered; pick another name or call "
                         "vertspine.data.unregister_dataset first.")

    def load() -> List[Dict[str, Any]]:
        if prepare is not None:
            prepare()
        return load_volume_cases(list_cases(), num_classes=len(class_names),
                                 ignore_label=ignore_label, empty_labels=empty_labels,
                                 spacing=spacing, dataset_name=name)

    DatasetCatalog.register(name, load)
    MetadataCatalog.get(name).set(**{
        **roots,
        "thing_classes": class_names,
        "stuff_classes": ["background", *class_names],
        **({"ignore_label": ignore_label} if ignore_label is not None else {}),
        "spatial_dims": 3,
        "evaluator_type": "sem_seg_dice",
        **metadata,
    })


def _case_name(path: str) -> str:
    """The case of a volume file: its name without the volume ending and nnU-Net's ``_0000``."""
    base = os.path.basename(path)
    ending = next((e for e in VOLUME_ENDINGS + (".npy",) if base.lower().endswith(e)), "")
    stem = base[: len(base) - len(ending)]
    return stem[: -len(NNUNET_CHANNEL_SUFFIX)] if stem.endswith(NNUNET_CHANNEL_SUFFIX) else stem


def _volume_files(folder: str, kind: str) -> Dict[str, str]:
    """{case: path} of the NIfTI files of ``folder``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"The {kind} folder '{folder}' does not exist.")
    files = {}
    for entry in sorted(os.listdir(folder)):
        if entry.startswith(".") or not entry.lower().endswith(VOLUME_ENDINGS):
            continue
        case = _case_name(entry)
        if case in files:
            raise DatasetValidationError(
                f"{folder}: '{os.path.basename(files[case])}' and '{entry}' are both case "
                f"'{case}'; keep one file per case (one channel, {NNUNET_CHANNEL_SUFFIX}).")
        files[case] = os.path.join(folder, entry)
    return files


def _folder_cases(name: str, image_dir: str, label_dir: Optional[str]) -> List[Case]:
    """The (case, image, label) of an image folder and its label folder."""
    images = _volume_files(image_dir, "image")
    if not images:
        raise FileNotFoundError(f"Dataset '{name}': no volume ({', '.join(VOLUME_ENDINGS)}) in "
                                f"'{image_dir}'.")
    channels = sorted(c for c in images if c[-5:-4] == "_" and c[-4:].isdigit())
    if channels:
        raise DatasetValidationError(
            f"Dataset '{name}': {channels[:_LISTED]} in '{image_dir}' look like extra nnU-Net "
            "channels (_0001, ...); only single-channel images (_0000) are supported.")
    if label_dir is None:
        return [(case, path, None) for case, path in images.items()]
    labels = _volume_files(label_dir, "label")
    missing = [c for c in images if c not in labels]
    if missing:
        raise DatasetValidationError(
            f"Dataset '{name}': {len(missing)} of {len(images)} images in '{image_dir}' have no "
            f"label of the same case name in '{label_dir}', e.g. {missing[:_LISTED]}. Add the "
            "labels, remove those images, or register without label_dir (unlabeled).")
    return [(case, path, labels[case]) for case, path in images.items()]


def _npy_cases(name: str, split_dir: str, require_labels: bool) -> List[Case]:
    """The (case, img.npy, mask.npy or None) of one split folder."""
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(f"Dataset '{name}': the split folder '{split_dir}' does not "
                                "exist; pass the splits your root holds (splits=...).")
    cases, unlabeled = [], []
    for case in sorted(os.listdir(split_dir)):
        folder = os.path.join(split_dir, case)
        if case.startswith(".") or not os.path.isdir(folder):
            continue
        image, label = os.path.join(folder, "img.npy"), os.path.join(folder, "mask.npy")
        if not os.path.isfile(image):
            raise DatasetValidationError(f"Dataset '{name}': case folder '{folder}' has no "
                                         "img.npy; remove the folder or add the image.")
        if not os.path.isfile(label):
            unlabeled.append(case)
            label = None
        cases.append((case, image, label))
    if not cases:
        raise FileNotFoundError(f"Dataset '{name}': no case folder (<case>/img.npy) in "
                                f"'{split_dir}'.")
    if require_labels and unlabeled:
        raise DatasetValidationError(
            f"Dataset '{name}': {len(unlabeled)} of {len(cases)} cases in '{split_dir}' have no "
            f"mask.npy, e.g. {unlabeled[:_LISTED]}; add the masks, or register with "
            "require_labels=False (cases without a mask are then unlabeled).")
    return cases
