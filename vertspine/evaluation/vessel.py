"""The vessel evaluator (``evaluator_type "vessel"``): per-case topology-aware vessel metrics.

Inputs (what :class:`~vertspine.data.VolumeMapper` gives at test time): ``sem_seg`` int64
[X, Y, Z] ground truth (0 background, 1 vessel), ``spacing`` (mm per array axis) and
``file_name``. Outputs (the segmentor's, in the frame of the input's ``sem_seg``): ``sem_seg``
[2, X, Y, Z] probabilities (background, vessel) and optionally ``vessel_mask`` [X, Y, Z], a
binary mask the model already post-processed. The prediction is ``vessel_mask`` when present,
else ``sem_seg[1] >= threshold`` (:func:`vessel_threshold`); AUROC and AP use ``sem_seg[1]``.

Metrics per case: :func:`~.vessel_metrics.vessel_metrics` (edge cases in that module). The
results, ``{"vessel": {...}}``: means over cases of Dice, IoU, precision, recall, clDice,
Tprec, Tsens, NSD, AUROC, AP in percent, HD95 in mm, and the Betti errors ``betti{0,1,2}_error``
(counts). A mean is taken over the cases where its metric is defined; skipped cases are left
out, never counted as 0 or NaN, and ``n-<metric>`` gives the number of cases behind each mean
(a metric skipped on every case has no mean: it is logged, and only its ``n-`` key, 0, is
reported). Per case, ``<output_dir>/vessel_per_case.csv``: one row per case, every metric of
:data:`~.vessel_metrics.METRIC_NAMES` (ratios in [0, 1], HD95 in mm, Betti values as counts),
``skipped`` where undefined, written atomically.
"""
import csv
import io
import logging
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.evaluation import DatasetEvaluator

from vertspine.utils.file_io import atomic_write

from .build import register_evaluator
from .gather import gather_on_main
from .vessel_config import vessel_evaluation_settings
from .vessel_metrics import METRIC_NAMES, vessel_metrics

__all__ = ["VesselEvaluator", "build_vessel_evaluator", "vessel_threshold"]

logger = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
PER_CASE_CSV = "vessel_per_case.csv"
# Reported in percent; HD95 stays in mm and the Betti errors are counts.
_PERCENT = ("Dice", "IoU", "precision", "recall", "clDice", "Tprec", "Tsens", "NSD", "AUROC", "AP")
_SUMMARY = _PERCENT + ("HD95", "betti0_error", "betti1_error", "betti2_error")


def vessel_threshold(cfg: CfgNode) -> Tuple[float, str]:
    """The probability threshold of the vessel class (foreground where p >= it) and its source:
    ``cfg.MODEL.VESSEL.INFERENCE.THRESHOLD`` when the config has it (the inference's own key,
    so evaluation and ``tools/segment_vessels.py`` binarise alike), else 0.5."""
    inference = cfg.MODEL.get("VESSEL", CfgNode()).get("INFERENCE", CfgNode())
    if "THRESHOLD" in inference:
        return float(inference.THRESHOLD), "MODEL.VESSEL.INFERENCE.THRESHOLD"
    return DEFAULT_THRESHOLD, "default (the config has no MODEL.VESSEL.INFERENCE.THRESHOLD)"


class VesselEvaluator(DatasetEvaluator):
    """Per-case vessel metrics and their means (see the module docstring)."""

    def __init__(self, dataset_name: str, *, threshold: float = DEFAULT_THRESHOLD,
                 nsd_tolerance_mm: float = 1.0, probability_metrics: bool = True,
                 distributed: bool = True, output_dir: Optional[str] = None):
        """
        Args:
            dataset_name: the dataset evaluated (named in the log).
            threshold: vessel where the probability is >= this, in (0, 1).
            nsd_tolerance_mm: NSD's tolerance in mm.
            probability_metrics: compute AUROC and AP (else reported as skipped).
            distributed: gather the per-case rows of every process.
            output_dir: where the per-case CSV is written (None = not written).
        """
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"Vessel threshold {threshold}: give a probability in (0, 1) "
                             "(MODEL.VESSEL.INFERENCE.THRESHOLD).")
        self.dataset_name = dataset_name
        self.threshold = threshold
        self.nsd_tolerance_mm = nsd_tolerance_mm
        self.probability_metrics = probability_metrics
        self.distributed = distributed
        self.output_dir = output_dir
        self._rows: List[Dict] = []

    def reset(self) -> None:
        self._rows = []

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        """
        Args:
            inputs: mapper outputs with ``sem_seg`` [X, Y, Z] int64, ``spacing`` and
                ``file_name``.
            outputs: model outputs with ``sem_seg`` [2, X, Y, Z] probabilities and/or
                ``vessel_mask`` [X, Y, Z].
        Raises:
            KeyError: an input without ``sem_seg`` or ``spacing``, or an output with neither
                key; ValueError: non-binary labels, probabilities outside [0, 1], shapes that
                differ (each naming the case).
        """
        for record, output in zip(inputs, outputs):
            name = record.get("file_name", "?")
            gt = self._ground_truth(record, name)
            pred, prob = self._prediction(output, name)
            try:
                scores = vessel_metrics(pred, gt, record["spacing"],
                                        prob=prob if self.probability_metrics else None,
                                        nsd_tolerance_mm=self.nsd_tolerance_mm)
            except ValueError as error:
                raise ValueError(f"'{name}': {error}") from error
            self._rows.append({"file_name": name, **scores})

    @staticmethod
    def _ground_truth(record: Dict, name: str) -> np.ndarray:
        """``sem_seg`` as an int64 [X, Y, Z] array of 0/1, after checking the record's keys."""
        for key in ("sem_seg", "spacing"):
            if key not in record:
                raise KeyError(f"Input '{name}' has no '{key}'; the vessel evaluator needs a "
                               "labelled volume dataset read by INPUT.DATASET_MAPPER VolumeMapper.")
        gt = record["sem_seg"].cpu().numpy()
        labels = np.unique(gt)
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"'{name}': ground-truth labels {labels.tolist()}; the vessel "
                             "evaluator takes binary masks (0 background, 1 vessel).")
        return gt

    def _prediction(self, output: Dict, name: str) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(binary prediction [X, Y, Z], vessel probabilities [X, Y, Z] float32 or None): the
        output's ``vessel_mask`` when present, else ``sem_seg[1] >= threshold``."""
        prob = None
        if "sem_seg" in output:
            scores = output["sem_seg"]
            if scores.dim() != 4 or scores.shape[0] != 2:
                raise ValueError(f"'{name}': the output 'sem_seg' has shape {tuple(scores.shape)};"
                                 " the vessel evaluator takes [2, X, Y, Z] (background, vessel).")
            prob = scores[1].float().cpu().numpy()
            if not (np.isfinite(prob).all() and prob.min() >= 0.0 and prob.max() <= 1.0):
                raise ValueError(f"'{name}': the vessel scores span [{prob.min()}, {prob.max()}], "
                                 "not [0, 1]: the model must output probabilities (sigmoid), not "
                                 "logits.")
        if "vessel_mask" in output:
            pred = output["vessel_mask"].cpu().numpy()
            if not np.isin(np.unique(pred), (0, 1)).all():
                raise ValueError(f"'{name}': the output 'vessel_mask' is not binary (0/1).")
            return pred, prob
        if prob is None:
            raise KeyError(f"The output for '{name}' has neither 'sem_seg' nor 'vessel_mask'.")
        return prob >= self.threshold, prob

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        rows = gather_on_main(self._rows, self.distributed)
        if rows is None:
            return None
        if not rows:
            logger.warning("Vessel evaluation of %s received no cases.", self.dataset_name)
            return {"vessel": {}}
        rows = sorted(rows, key=lambda r: r["file_name"])
        if self.output_dir:
            _write_per_case_csv(os.path.join(self.output_dir, PER_CASE_CSV), rows)
        return {"vessel": self._summarize(rows)}

    def _summarize(self, rows: List[Dict]) -> Dict[str, float]:
        """Means over the cases where each metric is defined, and their counts ``n-<metric>``."""
        results = {}
        for metric in _SUMMARY:
            values = [r[metric] for r in rows if r[metric] is not None]
            results[f"n-{metric}"] = float(len(values))
            if values:
                results[metric] = float(np.mean(values)) * (100.0 if metric in _PERCENT else 1.0)
            if len(values) < len(rows):
                logger.info("Vessel %s on %s: skipped on %d of %d cases (undefined there: see "
                            "vertspine.evaluation.vessel_metrics); %s.", metric, self.dataset_name,
                            len(rows) - len(values), len(rows),
                            f"mean of {len(values)}" if values else "no mean")
        return results


def _write_per_case_csv(path: str, rows: List[Dict]) -> None:
    """One row per case: ``file_name`` then :data:`METRIC_NAMES`, ``skipped`` where None."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file_name", *METRIC_NAMES])
    for row in rows:
        writer.writerow([row["file_name"], *("skipped" if row[m] is None else f"{row[m]:.6g}"
                                             for m in METRIC_NAMES)])
    with atomic_write(path, "w", newline="") as f:
        f.write(buffer.getvalue())


@register_evaluator("vessel")
def build_vessel_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str) -> VesselEvaluator:
    """Vessel metrics with the inference's threshold and ``TEST.VESSEL``'s settings."""
    threshold, source = vessel_threshold(cfg)
    settings = vessel_evaluation_settings(cfg)
    logger.info("Vessel evaluation of %s: vessel where p >= %s (%s), NSD tolerance %s mm.",
                dataset_name, threshold, source, settings.NSD_TOLERANCE_MM)
    return VesselEvaluator(dataset_name, threshold=threshold,
                           nsd_tolerance_mm=settings.NSD_TOLERANCE_MM,
                           probability_metrics=settings.PROBABILITY_METRICS,
                           distributed=True, output_dir=output_folder)
