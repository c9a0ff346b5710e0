"""Folders of challenge npz cases registered as detectron2 datasets, split by modality.

    register_prompt_seg_folder("laptop_train", "CVPR24-MedSAMLaptopData/train")
    # -> laptop_train, and laptop_train_CT, laptop_train_XRay, ... (one per modality found)

Every ``.npz`` under the folder (recursively, hidden files skipped, sorted) is a case; its
modality comes from the file-name prefix (:mod:`.modality`) or from a CSV. A file without a
modality is an error that lists every such file (``unknown_modality="skip"`` leaves them out with
one warning). Each modality gets its own dataset ``<name>_<modality>`` (DAFT's data-aware
fine-tuning trains one model per subset); the subsets are found by listing the folder at
registration, or declared with ``modalities=`` when the folder is written later (``prepare``).

Records (read lazily at ``DatasetCatalog.get``; each file is read and validated once):

* ``file_name`` (absolute npz path), ``image_id`` (path relative to the folder, without
  ``.npz``; 3D slice records add ``:z<index>``), ``modality``, ``height``, ``width``,
  ``spatial_dims`` (2 or 3);
* 3D: ``depth``, ``spacing`` (mm, array order D, H, W), ``spacing_order`` (as stored), and
  ``slices="labelled"`` (default): one record per slice holding any label, with
  ``slice_index``; ``slices="random"``: one record per volume with ``labelled_slices``, the
  training mapper draws one of them per visit (DAFT's ``finetune.py``).

Cases without any label are skipped and counted in one warning. Metadata: ``evaluator_type``
"prompt_seg", ``folder``, ``modalities`` (the subsets), and ``modality`` on a subset.
"""
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .modality import assign_modalities
from .npz_format import SPACING_ORDERS, read_prompt_seg_npz

__all__ = ["SLICE_MODES", "list_npz_files", "load_prompt_seg_records", "register_prompt_seg_folder"]

logger = logging.getLogger(__name__)

SLICE_MODES = ("labelled", "random")
_LISTED = 10  # file names quoted per message


def list_npz_files(folder: str) -> List[str]:
    """Every ``.npz`` under ``folder`` (recursively; hidden files and folders skipped), sorted.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
    """
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"npz folder not found: {os.path.abspath(folder)}")
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(parent, f) for f in files
                  if f.lower().endswith(".npz") and not f.startswith(".")]
    return sorted(os.path.abspath(f) for f in found)


def _records_of(path: str, folder: str, modality: str, slices: str,
                spacing_order: str) -> List[Dict[str, Any]]:
    """The records of one case (none when it holds no label)."""
    case = read_prompt_seg_npz(path, require_gts=True, spacing_order=spacing_order)
    base = {"file_name": path, "modality": modality, "spatial_dims": case.spatial_dims,
            "height": int(case.gts.shape[-2]), "width": int(case.gts.shape[-1])}
    image_id = os.path.relpath(path, folder)[: -len(".npz")]
    if case.spatial_dims == 2:
        return [dict(base, image_id=image_id)] if case.gts.any() else []
    labelled = np.flatnonzero(case.gts.reshape(len(case.gts), -1).max(axis=1) > 0).tolist()
    base.update(depth=int(case.gts.shape[0]), spacing=list(case.spacing),
                spacing_order=spacing_order)
    if not labelled:
        return []
    if slices == "random":
        return [dict(base, image_id=image_id, labelled_slices=labelled)]
    return [dict(base, image_id=f"{image_id}:z{z}", slice_index=z) for z in labelled]


def load_prompt_seg_records(folder: str, *, modality_csv: Optional[str] = None,
                            slices: str = "labelled", unknown_modality: str = "error",
                            spacing_order: str = "xyz", dataset_name: str = "",
                            **csv_columns: str) -> List[Dict[str, Any]]:
    """Read and validate every case of ``folder`` into records (see the module docstring).

    Raises:
        FileNotFoundError: no such folder.
        ValueError: no npz file, or no labelled case.
        UnknownModalityError: files without a modality (``unknown_modality="error"``).
        PromptSegFormatError: a case breaks the npz format (the message names it).
    """
    files = list_npz_files(folder)
    label = f"Dataset '{dataset_name}'" if dataset_name else os.path.abspath(folder)
    if not files:
        raise ValueError(f"{label}: no .npz file under {os.path.abspath(folder)}.")
    modalities, skipped = assign_modalities(files, modality_csv, unknown=unknown_modality,
                                            **csv_columns)
    if skipped:
        logger.warning("%s: %d file(s) without a modality left out: %s", label, len(skipped),
                       ", ".join(os.path.basename(p) for p in skipped[:_LISTED]))
    records, unlabelled = [], []
    for path, modality in modalities.items():
        found = _records_of(path, os.path.abspath(folder), modality, slices, spacing_order)
        records += found
        if not found:
            unlabelled.append(os.path.basename(path))
    if unlabelled:
        logger.warning("%s: %d case(s) without any label skipped: %s", label, len(unlabelled),
                       ", ".join(unlabelled[:_LISTED]))
    if not records:
        raise ValueError(f"{label}: no case under {os.path.abspath(folder)} holds a label "
                         "('gts' > 0); nothing to train or evaluate on.")
    return records


def register_prompt_seg_folder(
    name: str,
    folder: str,
    *,
    modality_csv: Optional[str] = None,
    modalities: Optional[Sequence[str]] = None,
    slices: str = "labelled",
    unknown_modality: str = "error",
    spacing_order: str = "xyz",
    prepare: Optional[Callable[[], Any]] = None,
    **metadata: Any,
) -> List[str]:
    """Register ``folder`` as ``name`` and one subset ``<name>_<modality>`` per modality (lazily).

    Args:
        name: dataset name for ``DATASETS.TRAIN`` / ``TEST``.
        folder: the folder of npz cases.
        modality_csv: CSV with columns ``file_name`` and ``modality`` (every file listed);
            None takes the modality from the file-name prefix.
        modalities: the subsets to register; None lists the folder now to find them (it must
            exist). When given, a file of another modality is an error at load.
        slices: 3D records: "labelled" (one per labelled slice) or "random" (one per volume).
        unknown_modality: files without a modality: "error" (listed) or "skip" (warned).
        spacing_order: the stored spacing's order, "xyz" (challenge) or "zyx" (array's).
        prepare: called with no arguments before each load (e.g. writes the data).
        **metadata: extra ``MetadataCatalog`` entries.
    Returns:
        the registered names: ``name``, then the subsets in sorted order.
    Raises:
        ValueError: a bad option, or a name already registered.
        UnknownModalityError: ``modalities`` None and files without a modality.
    """
    if slices not in SLICE_MODES or spacing_order not in SPACING_ORDERS:
        raise ValueError(f"Dataset '{name}': slices={slices!r} must be one of {SLICE_MODES}, "
                         f"spacing_order={spacing_order!r} one of {SPACING_ORDERS}.")
    folder = os.path.abspath(folder)
    if modalities is None:
        found, _ = assign_modalities(list_npz_files(folder), modality_csv,
                                     unknown=unknown_modality)
        modalities = sorted(set(found.values()))
    modalities = sorted(modalities)
    names = [name] + [f"{name}_{m}" for m in modalities]
    taken = [n for n in names if n in DatasetCatalog]
    if taken:
        raise ValueError(f"Datasets {taken} are already registered; pick another name or call "
                         "vertspine.data.unregister_dataset first.")

    def load_all() -> List[Dict[str, Any]]:
        if prepare is not None:
            prepare()
        records = load_prompt_seg_records(folder, modality_csv=modality_csv, slices=slices,
                                          unknown_modality=unknown_modality,
                                          spacing_order=spacing_order, dataset_name=name)
        other = sorted({r["modality"] for r in records} - set(modalities))
        if other:
            raise ValueError(f"Dataset '{name}': {folder} holds modalities {other} beyond the "
                             f"declared {modalities}; register it with modalities=None (found "
                             "from the files) or add them.")
        return records

    DatasetCatalog.register(name, load_all)
    common = {"evaluator_type": "prompt_seg", "folder": folder, "modalities": modalities,
              **metadata}
    MetadataCatalog.get(name).set(**common)
    for modality, subset in zip(modalities, names[1:]):
        DatasetCatalog.register(subset, lambda m=modality: [r for r in load_all()
                                                             if r["modality"] == m])
        MetadataCatalog.get(subset).set(**common, modality=modality)
    return names
