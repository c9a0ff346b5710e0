#!/usr/bin/env python
"""DSC and NSD of box-prompted segmentations: two folders of challenge npz files compared.

    python tools/evaluate_prompt_seg.py --pred output/segs --gt data/gts --output output/metrics
    # the challenge leaderboard's rules:
    python tools/evaluate_prompt_seg.py --pred P --gt G --gate-dsc 0.2 --planar-nsd slab

Each ``<case>.npz`` of ``--gt`` (``gts``: [H, W] 2D, or [D, H, W] 3D with ``spacing``, 3 values
in mm, stored as the challenge's files do in SimpleITK's (x, y, z) order, the reverse of the
arrays' axes; ``--spacing-order zyx`` for files that store the arrays' order) is compared with
``--pred/<case>.npz`` (``segs``, same shape):
per label DSC and NSD (2 px in 2D, 2 mm in 3D; definitions and rules in
:mod:`vertspine.evaluation.prompt_seg_metrics`), averaged per case, then over cases, overall and
per modality (from the file-name prefix, e.g. ``2DBox_X-Ray_...`` -> XRay). A case without a
prediction scores 0 on every label and is reported; predictions without a ground truth are
reported and left out; files that cannot be scored (no ``gts``/``segs``, shapes that differ, a
volume without spacing) are reported, left out, and make the exit status 1. Written to
``--output`` (atomically): ``prompt_seg_per_case.csv``, ``prompt_seg_per_label.csv``,
``prompt_seg_summary.json``; the per-modality table is printed, and the voxels missed,
spurious and swapped (another structure's label) summed over the cases (per case in the CSV).
"""
import argparse
import logging
import os
import sys
import zipfile
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Tuple

import numpy as np

import vertspine  # noqa: F401  (first: detectron2 without compiled ops)
from vertspine.data.prompt_seg.modality import modality_from_name
from vertspine.evaluation.prompt_seg_metrics import (PLANAR_NSD_MODES, SPACING_ORDERS,
                                                     case_scores, spacing_in_array_order)
from vertspine.evaluation.prompt_seg_report import (case_row, modality_table, summarize,
                                                    voxel_error_totals, write_case_csv,
                                                    write_label_csv)
from vertspine.utils.file_io import write_json

logger = logging.getLogger("vertspine.evaluate_prompt_seg")

def score_case(gt_path: str, pred_path: Optional[str], settings: Dict) -> Dict:
    """One report row for a case (its ``note`` says why it is missing or unscorable)."""
    case = os.path.basename(gt_path)
    modality = modality_from_name(case) or "unknown"
    try:
        gts, spacing = _read(gt_path, "gts", settings["spacing_order"])
        if pred_path is None:
            segs, note = np.zeros_like(gts), "missing prediction: scored as empty"
        else:
            segs, note = _read(pred_path, "segs", settings["spacing_order"])[0], ""
        tolerance = settings["tolerance_3d"] if gts.ndim == 3 else settings["tolerance_2d"]
        scores = case_scores(gts, segs, spacing=spacing, tolerance=tolerance,
                             gate_dsc=settings["gate_dsc"], planar_nsd=settings["planar_nsd"])
    except ValueError as error:
        return case_row(case, modality, None, note=f"error: {error}")
    return case_row(case, modality, scores, note=note)


def _read(path: str, key: str, spacing_order: str
          ) -> Tuple[np.ndarray, Optional[Tuple[float, ...]]]:
    """(array ``key``, spacing of a 3D array in its (z, y, x) order, or None for 2D) of an npz;
    ValueError naming the file."""
    try:
        npz = np.load(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} is not a readable npz ({error}).") from error
    with npz:
        if key not in npz.files:
            raise ValueError(f"{path} has no '{key}' array (keys: {npz.files}).")
        array = npz[key]
        if key == "segs" or array.ndim != 3:
            return array, None
        if "spacing" not in npz.files:
            raise ValueError(f"{path}: a 3D '{key}' {array.shape} needs 'spacing' (3 values in "
                             "mm, the challenge's (x, y, z) order); add it to the npz.")
        try:
            return array, spacing_in_array_order(npz["spacing"], spacing_order)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error


def _npz_names(folder: str, flag: str) -> List[str]:
    if not os.path.isdir(folder):
        raise SystemExit(f"{flag} {folder}: no such folder.")
    return sorted(n for n in os.listdir(folder) if n.endswith(".npz"))


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pred", required=True, help="folder of predicted npz (segs)")
    parser.add_argument("--gt", required=True, help="folder of ground-truth npz (gts, spacing)")
    parser.add_argument("--output", help="folder for the CSV and JSON files (default: none)")
    parser.add_argument("--gate-dsc", type=float, default=None,
                        help="NSD 0 for a case whose mean DSC (0-1) is not above this "
                             "(the challenge's 0.2; default: off)")
    parser.add_argument("--planar-nsd", choices=PLANAR_NSD_MODES, default="contour",
                        help="2D NSD on the contour (default) or as the challenge's one-slice slab")
    parser.add_argument("--tolerance-2d", type=float, default=2.0, help="NSD tolerance, px (2D)")
    parser.add_argument("--tolerance-3d", type=float, default=2.0, help="NSD tolerance, mm (3D)")
    parser.add_argument("--spacing-order", choices=SPACING_ORDERS, default="xyz",
                        help="order of the stored 3D spacing: xyz (the challenge's files, "
                             "default) or zyx (the arrays' order)")
    parser.add_argument("--num-workers", type=int, default=1, help="processes scoring cases")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    settings = {"tolerance_2d": args.tolerance_2d, "tolerance_3d": args.tolerance_3d,
                "gate_dsc": args.gate_dsc, "planar_nsd": args.planar_nsd,
                "spacing_order": args.spacing_order}
    gt_names, pred_names = _npz_names(args.gt, "--gt"), _npz_names(args.pred, "--pred")
    if not gt_names:
        raise SystemExit(f"--gt {args.gt} holds no .npz file.")
    jobs = [(os.path.join(args.gt, n),
             os.path.join(args.pred, n) if n in pred_names else None, settings) for n in gt_names]
    if args.num_workers > 1:
        with ProcessPoolExecutor(args.num_workers) as pool:
            rows = list(pool.map(score_case, *zip(*jobs)))
    else:
        rows = [score_case(*job) for job in jobs]

    missing = [r["case"] for r in rows if r["note"].startswith("missing")]
    errors = {r["case"]: r["note"] for r in rows if r["note"].startswith("error")}
    extra = sorted(set(pred_names) - set(gt_names))
    unknown = [r["case"] for r in rows if r["modality"] == "unknown"]
    for message, names in (("predictions missing (scored as empty)", missing),
                           ("predictions without a ground truth (left out)", extra),
                           ("cases whose file-name prefix names no known modality", unknown)):
        if names:
            logger.warning("%d %s: %s", len(names), message, ", ".join(names[:20]))
    for case, note in errors.items():
        logger.error("%s not scored: %s", case, note)
    print(modality_table(rows))
    voxel_errors = voxel_error_totals(rows)
    print("voxels missed {missed}, spurious {spurious}, swapped {swapped}".format(**voxel_errors))
    summary = {"results": summarize(rows), "voxel_errors": voxel_errors, "cases": len(rows),
               "missing": missing, "extra": extra, "errors": errors,
               "unknown_modality": unknown, "settings": settings}
    if args.output:
        write_case_csv(os.path.join(args.output, "prompt_seg_per_case.csv"), rows)
        write_label_csv(os.path.join(args.output, "prompt_seg_per_label.csv"), rows)
        write_json(os.path.join(args.output, "prompt_seg_summary.json"),
                   {**summary, "results": {k: _finite(v) for k, v in summary["results"].items()}})
    return summary


def _finite(value: float) -> Optional[float]:
    """JSON has no NaN: None instead."""
    return None if value != value else value


if __name__ == "__main__":
    sys.exit(1 if main()["errors"] else 0)
