"""Per-case rows of box-prompted segmentation scores: averages, the per-modality table and the
CSV files, shared by the ``prompt_seg`` evaluator and ``tools/evaluate_prompt_seg.py``.

The overall means come with a 95% percentile bootstrap interval over cases: the slices of one
volume are resampled together (a volume is one draw), as neighbouring slices are not independent
samples.

A row is a dict: ``case`` (the npz file name), ``slice_index`` (a 3D file's slice, or None for
a whole image or volume), ``modality``, ``note`` ("" or why the case has no score) and
``scores`` (:class:`~.prompt_seg_metrics.CaseScores`, or None when the case could not be
scored). Scores are reported in percent.
"""
import csv
import io
import math
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np

from vertspine.utils.file_io import atomic_write

from .classification_metrics import bootstrap_intervals

__all__ = ["case_row", "modality_table", "summarize", "voxel_error_totals", "write_case_csv",
           "write_label_csv"]


def case_row(case: str, modality: str, scores, *, slice_index: Optional[int] = None,
             note: str = "") -> Dict:
    """One row (see the module docstring); a case without any label gets a note saying so."""
    if scores is not None and not len(scores.labels) and not note:
        note = "no label in the ground truth or the prediction: not scored"
    return {"case": case, "slice_index": slice_index, "modality": modality, "note": note,
            "scores": scores}


def _scored(rows: List[Dict]) -> List[Dict]:
    return [r for r in rows if r["scores"] is not None and len(r["scores"].labels)]


def summarize(rows: List[Dict], num_resamples: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Mean case DSC and NSD (percent) over the scored rows, overall and per modality, and the
    overall means' bootstrap intervals (see the module docstring).

    Args:
        rows: rows of :func:`case_row`.
        num_resamples: bootstrap resamples of the cases (0: no intervals).
        seed: the bootstrap's seed.
    Returns:
        ``{"DSC", "NSD", "DSC-<modality>", "NSD-<modality>", ..., "DSC_ci_low", "DSC_ci_high",
        "NSD_ci_low", "NSD_ci_high"}``; NaN without scored rows.
    """
    scored_rows = _scored(rows)
    groups = defaultdict(list)
    for row in scored_rows:
        groups[row["modality"]].append(row["scores"])
    scored = [s for group in groups.values() for s in group]
    results = {"DSC": _mean([s.mean_dsc for s in scored]),
               "NSD": _mean([s.mean_nsd for s in scored])}
    for modality in sorted(groups):
        results[f"DSC-{modality}"] = _mean([s.mean_dsc for s in groups[modality]])
        results[f"NSD-{modality}"] = _mean([s.mean_nsd for s in groups[modality]])
    if num_resamples:
        results.update(_case_intervals(scored_rows, num_resamples, seed))
    return results


def _case_intervals(scored: List[Dict], num_resamples: int, seed: int) -> Dict[str, float]:
    """``{"<metric>_ci_low", "<metric>_ci_high"}`` (percent) of the mean DSC and NSD over the
    rows, resampling cases (a volume's slice rows together)."""
    if not scored:
        return {f"{m}_ci_{end}": math.nan for m in ("DSC", "NSD") for end in ("low", "high")}
    cases, case_index = np.unique([r["case"] for r in scored], return_inverse=True)
    rows_per_case = np.bincount(case_index, minlength=len(cases))
    sums = {name: np.bincount(case_index, weights=[100 * getattr(r["scores"], attr)
                                                    for r in scored], minlength=len(cases))
            for name, attr in (("DSC", "mean_dsc"), ("NSD", "mean_nsd"))}

    def means(index: np.ndarray) -> Dict[str, np.ndarray]:  # index [B, cases]
        counts = rows_per_case[index].sum(axis=1)
        return {name: total[index].sum(axis=1) / counts for name, total in sums.items()}

    intervals = bootstrap_intervals(means, len(cases), num_resamples, seed)
    return {f"{name}_ci_{end}": value for name, (low, high) in intervals.items()
            for end, value in (("low", low), ("high", high))}


def modality_table(rows: List[Dict]) -> str:
    """A text table: per modality, the cases scored and left out, mean DSC and NSD (percent)."""
    modalities = sorted({r["modality"] for r in rows})
    summary = summarize(rows, num_resamples=0)
    lines = [f"{'modality':<16}{'scored':>8}{'unscored':>10}{'DSC':>9}{'NSD':>9}"]
    for name, key in [(m, f"-{m}") for m in modalities] + [("all", "")]:
        group = [r for r in rows if name == "all" or r["modality"] == name]
        scored = len(_scored(group))
        lines.append(f"{name:<16}{scored:>8}{len(group) - scored:>10}"
                     f"{summary.get('DSC' + key, math.nan):>9.2f}"
                     f"{summary.get('NSD' + key, math.nan):>9.2f}")
    return "\n".join(lines)


def voxel_error_totals(rows: List[Dict]) -> Dict[str, int]:
    """The voxels missed, spurious and swapped, summed over the rows that have scores."""
    scores = [row["scores"] for row in rows if row["scores"] is not None]
    return {key: int(sum(getattr(s, key) for s in scores))
            for key in ("missed", "spurious", "swapped")}


def write_case_csv(path: str, rows: List[Dict]) -> None:
    """One line per row, sorted by case and slice (atomically): case, slice_index, modality,
    DSC, NSD (percent, empty when not scored), labels scored, labels skipped, gated, the voxels
    missed, spurious and swapped (:class:`~.prompt_seg_metrics.CaseScores`), note."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "slice_index", "modality", "DSC", "NSD", "labels", "skipped_labels",
                     "gated", "missed", "spurious", "swapped", "note"])
    for row in _sorted(rows):
        s = row["scores"]
        scored = s is not None and len(s.labels)
        counts = ([len(s.labels), s.skipped_labels, int(s.gated), s.missed, s.spurious, s.swapped]
                  if s is not None else [""] * 6)
        writer.writerow([row["case"], _blank(row["slice_index"]), row["modality"],
                         f"{100 * s.mean_dsc:.4f}" if scored else "",
                         f"{100 * s.mean_nsd:.4f}" if scored else "", *counts, row["note"]])
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())


def write_label_csv(path: str, rows: List[Dict]) -> None:
    """One line per scored label (atomically): case, slice_index, modality, label, DSC, NSD."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["case", "slice_index", "modality", "label", "DSC", "NSD"])
    for row in _sorted(_scored(rows)):
        s = row["scores"]
        for label, dsc, nsd in zip(s.labels, s.dsc, s.nsd):
            writer.writerow([row["case"], _blank(row["slice_index"]), row["modality"], int(label),
                             f"{100 * dsc:.4f}", f"{100 * nsd:.4f}"])
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(buffer.getvalue())


def _sorted(rows: List[Dict]) -> List[Dict]:
    return sorted(rows, key=lambda r: (r["case"], -1 if r["slice_index"] is None
                                       else r["slice_index"]))


def _blank(value) -> str:
    return "" if value is None else str(value)


def _mean(values: List[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else math.nan
