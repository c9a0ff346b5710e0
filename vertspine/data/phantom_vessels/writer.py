"""Writing vessel phantom splits as NIfTI image/label pairs, generated once and cached.

Layout under ``root`` (one folder per split, each published atomically on its own)::

    {split}/images/vessel_{split}_{i:03d}.nii.gz   image, float32 (train domain) or int16 (shift)
    {split}/labels/vessel_{split}_{i:03d}.nii.gz   uint8 0/1, the same affine
    {split}/cases.json                             per case: drawn geometry and appearance,
                                                   label voxel count and fraction
    {split}/manifest.json                          generator version, config, appearance domain

The affine (sform and qform) carries the spacing and, for some volumes, an oblique direction.
"""
import logging
import os
import time
from typing import Any, Dict, Optional

from vertspine.utils.file_io import write_json, write_nifti

from ..generated_folder import ensure_generated_folder
from .config import GENERATOR_VERSION, SPLIT_DOMAINS, SPLITS, VesselPhantomConfig
from .generator import APPEARANCE_DOMAINS, generate_vessel_volume

__all__ = ["ensure_vessel_split", "split_manifest", "vessel_split_paths", "write_vessel_split"]

logger = logging.getLogger(__name__)


def vessel_split_paths(root: str, split: str) -> Dict[str, str]:
    """Folders and files of ``split`` under ``root`` (nothing is created)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown vessel phantom split {split!r}; expected one of {SPLITS}.")
    return _split_files(os.path.join(root, split))


def _split_files(folder: str) -> Dict[str, str]:
    return {"folder": folder, "image_dir": os.path.join(folder, "images"),
            "label_dir": os.path.join(folder, "labels"),
            "cases": os.path.join(folder, "cases.json")}


def write_vessel_split(folder: str, split: str, cfg: VesselPhantomConfig) -> Dict[str, Any]:
    """Generate every volume of ``split`` and write it into ``folder`` (files atomic).

    Returns:
        ``{case: info}`` as written to ``cases.json``.
    """
    paths = _split_files(folder)
    cases = {}
    for index in range(cfg.num_volumes(split)):
        volume = generate_vessel_volume(cfg, split, index)
        case = f"vessel_{split}_{index:03d}"
        write_nifti(os.path.join(paths["image_dir"], f"{case}.nii.gz"), volume.image, volume.affine)
        write_nifti(os.path.join(paths["label_dir"], f"{case}.nii.gz"), volume.label, volume.affine)
        voxels = int(volume.label.sum())
        cases[case] = {**volume.info, "label_voxels": voxels,
                       "label_fraction": voxels / volume.label.size}
    write_json(paths["cases"], cases)
    return cases


def split_manifest(split: str, cfg: VesselPhantomConfig) -> Dict[str, Any]:
    """What identifies a generated split (its cache key; other splits' counts are left out)."""
    config = {k: v for k, v in cfg.to_dict().items() if not k.startswith("num_")}
    return {"generator_version": GENERATOR_VERSION, "split": split,
            "num_volumes": cfg.num_volumes(split), "config": config,
            "appearance": APPEARANCE_DOMAINS[SPLIT_DOMAINS[split]].to_dict()}


def ensure_vessel_split(root: str, split: str,
                        cfg: Optional[VesselPhantomConfig] = None) -> Dict[str, str]:
    """Make ``root/split`` hold the split of ``cfg``, generating it when missing or stale.

    Generation is atomic (a staging folder renamed into place) and safe with concurrent
    processes (:func:`~vertspine.data.generated_folder.ensure_generated_folder`); it is logged.

    Returns:
        :func:`vessel_split_paths` of the split.
    """
    cfg = cfg or VesselPhantomConfig()
    paths = vessel_split_paths(root, split)
    start = time.perf_counter()

    def write_into(staging: str) -> None:
        logger.info("Generating the vessel phantom split '%s' (%d volumes) into %s ...", split,
                    cfg.num_volumes(split), os.path.abspath(paths["folder"]))
        write_vessel_split(staging, split, cfg)

    if ensure_generated_folder(paths["folder"], split_manifest(split, cfg), write_into):
        logger.info("Vessel phantom split '%s' written in %.1f s.", split,
                    time.perf_counter() - start)
    return paths
