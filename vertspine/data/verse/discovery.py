"""Finding VerSe scans on disk and assigning them to patient-level splits.

File names follow VerSe's BIDS-like convention, searched recursively under the input root::

    <scan>_ct.nii.gz               CT volume (Hounsfield units)
    <scan>_seg-vert_msk.nii.gz     vertebra label mask on the CT's voxel grid
    <scan>_seg-subreg_ctd.json     centroids (optional)

VerSe20 keeps CTs under ``rawdata/sub-*/`` and masks/centroids under ``derivatives/sub-*/``;
VerSe19 may have them side by side in one folder per patient; both are found, since files are
paired by ``<scan>`` (e.g. ``sub-gl003_dir-ax``), not by folder. The patient is the first
``_``-separated token of ``<scan>`` (``sub-gl003``): all scans of a patient go to one split.

Splits: VerSe's own release folders (``dataset-verse19training``, ``dataset-02validation``,
``dataset-03test``, or folders named ``train``/``val``/``test``) give the split of every file
below them; otherwise patients are shuffled with a seed and cut by ratios.
"""
import logging
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..spine_categories import SPLITS

__all__ = [
    "VerseScan",
    "assign_splits",
    "find_verse_scans",
    "folder_split",
]

logger = logging.getLogger(__name__)

_SUFFIXES = {
    "ct": ("_ct.nii.gz", "_ct.nii"),
    "mask": ("_seg-vert_msk.nii.gz", "_seg-vert_msk.nii"),
    "centroids": ("_seg-subreg_ctd.json",),
}
_SPLIT_PATTERNS = (
    ("val", re.compile(r"(?<![a-z])val(idation)?$")),
    ("train", re.compile(r"(?<![a-z])train(ing)?$")),
    ("test", re.compile(r"(?<![a-z])test$")),
)


@dataclass(frozen=True)
class VerseScan:
    """One CT with its vertebra mask.

    Attributes:
        scan_id: the file-name stem shared by the scan's files, e.g. ``sub-gl003_dir-ax``.
        patient_id: the patient, e.g. ``sub-gl003``; splits never separate a patient's scans.
        ct_path: the CT NIfTI.
        mask_path: the ``seg-vert_msk`` NIfTI.
        centroid_path: the ``seg-subreg_ctd.json`` file, or None.
        folder_split: "train"/"val"/"test" read from VerSe's folder names, or None.
    """

    scan_id: str
    patient_id: str
    ct_path: str
    mask_path: str
    centroid_path: Optional[str]
    folder_split: Optional[str]


def folder_split(relative_path: str) -> Optional[str]:
    """The split named by a folder of ``relative_path`` (innermost wins), or None."""
    for part in reversed(os.path.normpath(relative_path).split(os.sep)[:-1]):
        for split, pattern in _SPLIT_PATTERNS:
            if pattern.search(part.lower()):
                return split
    return None


def find_verse_scans(root: str) -> Tuple[List[VerseScan], List[str]]:
    """Every CT/mask pair under ``root``, sorted by scan id.

    Args:
        root: the VerSe folder (a release folder or a parent of several).
    Returns:
        (scans, unpaired): the pairs, and the CT or mask files whose partner is missing
        (they are left out; the converter reports them).
    Raises:
        FileNotFoundError: ``root`` is not a folder, or it holds no CT/mask pair.
        ValueError: two files of one kind share a scan id (both paths named).
    """
    if not os.path.isdir(root):
        raise FileNotFoundError(f"VerSe input folder {root} does not exist.")
    found: Dict[str, Dict[str, str]] = {kind: {} for kind in _SUFFIXES}
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for file_name in sorted(files):
            for kind, suffixes in _SUFFIXES.items():
                suffix = next((s for s in suffixes if file_name.endswith(s)), None)
                if suffix is None:
                    continue
                scan_id = file_name[: -len(suffix)]
                path = os.path.join(folder, file_name)
                if scan_id in found[kind]:
                    raise ValueError(
                        f"Two {kind} files for scan '{scan_id}': {found[kind][scan_id]} and "
                        f"{path}. Keep one (or convert the folders separately)."
                    )
                found[kind][scan_id] = path
    cts, masks = found["ct"], found["mask"]
    unpaired = sorted([cts[s] for s in cts if s not in masks] + [masks[s] for s in masks if s not in cts])
    scans = [
        VerseScan(
            scan_id=scan_id,
            patient_id=scan_id.split("_")[0],
            ct_path=cts[scan_id],
            mask_path=masks[scan_id],
            centroid_path=found["centroids"].get(scan_id),
            folder_split=folder_split(os.path.relpath(cts[scan_id], root)),
        )
        for scan_id in sorted(set(cts) & set(masks))
    ]
    if not scans:
        raise FileNotFoundError(
            f"No VerSe scan under {root}: expected pairs of '<scan>_ct.nii.gz' and "
            f"'<scan>_seg-vert_msk.nii.gz' (found {len(cts)} CTs, {len(masks)} masks)."
        )
    return scans, unpaired


def assign_splits(
    scans: Sequence[VerseScan],
    *,
    mode: str = "auto",
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Dict[str, List[VerseScan]]:
    """Patient-level splits.

    Args:
        scans: the scans to split.
        mode: "folders" (VerSe's release folders; every scan must be under one), "random"
            (patients shuffled by ``seed``, cut by ``ratios``) or "auto" (folders when every
            scan has one, else random).
        ratios: (train, val, test) shares, normalised to sum 1; the val and test counts are
            rounded, train takes the rest.
        seed: the shuffle seed (numpy ``default_rng``).
    Returns:
        {"train": [...], "val": [...], "test": [...]}, each sorted by scan id.
    Raises:
        ValueError: bad mode/ratios, a scan without a folder split in "folders" mode, or a
            patient whose scans lie in different release folders.
    """
    if mode not in ("auto", "folders", "random"):
        raise ValueError(f"split mode '{mode}' is not one of auto, folders, random.")
    patients: Dict[str, List[VerseScan]] = {}
    for scan in scans:
        patients.setdefault(scan.patient_id, []).append(scan)
    use_folders = mode == "folders" or (mode == "auto" and all(s.folder_split for s in scans))
    if use_folders:
        return _folder_splits(patients)
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"split ratios {tuple(ratios)} must be 3 non-negative numbers "
                         "(train, val, test) with a positive sum.")
    shares = np.asarray(ratios, dtype=float) / float(sum(ratios))
    order = sorted(patients)
    np.random.default_rng(seed).shuffle(order)
    num_val = int(round(shares[1] * len(order)))
    num_test = min(int(round(shares[2] * len(order))), len(order) - num_val)
    cut = {"val": order[:num_val], "test": order[num_val:num_val + num_test],
           "train": order[num_val + num_test:]}
    return {split: sorted((s for p in cut[split] for s in patients[p]), key=lambda s: s.scan_id)
            for split in SPLITS}


def _folder_splits(patients: Dict[str, List[VerseScan]]) -> Dict[str, List[VerseScan]]:
    splits: Dict[str, List[VerseScan]] = {split: [] for split in SPLITS}
    for patient, scans in sorted(patients.items()):
        named = {s.folder_split for s in scans}
        if None in named:
            missing = next(s.ct_path for s in scans if s.folder_split is None)
            raise ValueError(
                f"{missing} is not under a train/validation/test release folder; use split "
                "mode 'random' (with ratios), or move it into one."
            )
        if len(named) > 1:
            raise ValueError(
                f"Patient '{patient}' has scans in several split folders "
                f"({', '.join(sorted(s.ct_path for s in scans))}); a patient must stay in one split."
            )
        splits[named.pop()].extend(scans)
    return {split: sorted(scans, key=lambda s: s.scan_id) for split, scans in splits.items()}
