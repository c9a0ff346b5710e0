"""Per-image Dice and IoU of 2D and 3D semantic segmentation: ``evaluator_type "sem_seg_dice"``.

For each image (or volume) and each foreground class c (1..K), after argmax of the prediction
and in the frame of the ground truth the mapper gives (``inputs[i]["sem_seg"]``: the mask at its
original resolution for :class:`~vertspine.data.SemSegDatasetMapper`, the whole preprocessed
volume for :class:`~vertspine.data.VolumeMapper`), with ignored elements (the dataset's
``ignore_label``, 255 by default) left out::

    Dice_c = 2 |P_c & G_c| / (|P_c| + |G_c|),   IoU_c = |P_c & G_c| / |P_c | G_c|

Empty-vs-empty convention: when neither prediction nor ground truth has class c, Dice_c = IoU_c
= 1.0 (LVM-Med's convention, MONAI's ``ignore_empty=False``); an empty ground truth with a
non-empty prediction scores 0. Scores are averaged over images per class, then over classes, and
reported in percent: ``{"sem_seg": {"Dice", "IoU", "Dice-<class>", "IoU-<class>"}}``. The
per-image scores are written to ``<output_dir>/sem_seg_dice_per_image.csv``. Nothing is read
from disk: the ground truth is what the dataset mapper put in the inputs.
"""
import csv
import io
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from vertspine.data.image_mask_folders import IGNORE_LABEL
from vertspine.utils.file_io import atomic_write

from .build import register_evaluator
from .gather import gather_on_main

__all__ = ["SemSegDiceEvaluator", "dice_iou_per_class"]


def dice_iou_per_class(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                       ignore_label: int = IGNORE_LABEL) -> Tuple[np.ndarray, np.ndarray]:
    """Dice and IoU of every foreground class of one image or volume.

    Args:
        pred: [*spatial] predicted labels 0..num_classes (2D [H, W] or 3D [X, Y, Z]).
        gt: [*spatial] ground-truth labels 0..num_classes, ``ignore_label`` where unlabeled.
        num_classes: K foreground classes (labels 1..K).
        ignore_label: ground-truth label of elements left out.
    Returns:
        (dice [K], iou [K]) in [0, 1]; 1.0 for a class absent from both.
    Raises:
        ValueError: ``pred`` and ``gt`` differ in shape.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"Prediction {pred.shape} and ground truth {gt.shape} differ in size.")
    valid = gt != ignore_label
    dice, iou = np.ones(num_classes), np.ones(num_classes)
    for c in range(1, num_classes + 1):
        p, g = (pred == c) & valid, gt == c
        inter, total = np.count_nonzero(p & g), np.count_nonzero(p) + np.count_nonzero(g)
        if total:
            dice[c - 1] = 2.0 * inter / total
            iou[c - 1] = inter / (total - inter)
    return dice, iou


class SemSegDiceEvaluator(DatasetEvaluator):
    """Mean per-image Dice / IoU over foreground classes (see the module docstring)."""

    def __init__(self, dataset_name: str, *, distributed: bool = True,
                 output_dir: Optional[str] = None):
        """
        Args:
            dataset_name: a dataset whose metadata has ``stuff_classes`` (background first) and
                optionally ``ignore_label`` (default 255).
            distributed: gather the per-image scores of every process.
            output_dir: where the per-image CSV is written (None = not written).
        """
        classes = MetadataCatalog.get(dataset_name).get("stuff_classes", None)
        if not classes or len(classes) < 2:
            raise ValueError(f"Dataset '{dataset_name}' needs 'stuff_classes' metadata (background "
                             "then the foreground classes) for the sem_seg_dice evaluator.")
        self.class_names = list(classes[1:])
        self.ignore_label = MetadataCatalog.get(dataset_name).get("ignore_label", IGNORE_LABEL)
        self.distributed = distributed
        self.output_dir = output_dir
        self._rows: List[Dict] = []

    def reset(self) -> None:
        self._rows = []

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        """
        Args:
            inputs: mapper outputs with ``sem_seg`` [*spatial] int64 ground truth and
                ``file_name``.
            outputs: model outputs with ``sem_seg`` [K + 1, *spatial] scores in the frame of
                the inputs' ``sem_seg``.
        Raises:
            KeyError: an input without ``sem_seg``; ValueError: prediction and ground truth
                differ in shape.
        """
        for record, output in zip(inputs, outputs):
            if "sem_seg" not in record:
                raise KeyError(f"Input '{record.get('file_name')}' has no 'sem_seg' ground truth; "
                               "use a mapper that keeps it at test time (INPUT.DATASET_MAPPER "
                               "SemSegDatasetMapper or VolumeMapper) and a dataset with labels.")
            gt = record["sem_seg"].cpu().numpy()
            pred = output["sem_seg"].argmax(dim=0).cpu().numpy()
            try:
                dice, iou = dice_iou_per_class(pred, gt, len(self.class_names), self.ignore_label)
            except ValueError as error:
                raise ValueError(f"'{record.get('file_name')}': {error} The model must return "
                                 "'sem_seg' in the frame of the input's 'sem_seg'.") from error
            self._rows.append({"file_name": record["file_name"], "dice": dice, "iou": iou})

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        rows = gather_on_main(self._rows, self.distributed)
        if rows is None:
            return None
        if not rows:
            return {"sem_seg": {}}
        dice = np.stack([r["dice"] for r in rows]).mean(axis=0) * 100.0
        iou = np.stack([r["iou"] for r in rows]).mean(axis=0) * 100.0
        results = {"Dice": float(dice.mean()), "IoU": float(iou.mean())}
        for name, d, i in zip(self.class_names, dice, iou):
            results[f"Dice-{name}"], results[f"IoU-{name}"] = float(d), float(i)
        if self.output_dir:
            self._write_rows(rows)
        return {"sem_seg": results}

    def _write_rows(self, rows: List[Dict]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        names = [f"{m}-{c}" for m in ("Dice", "IoU") for c in self.class_names]
        writer.writerow(["file_name", *names])
        for row in sorted(rows, key=lambda r: r["file_name"]):
            writer.writerow([row["file_name"], *(f"{v:.6f}" for v in row["dice"]),
                             *(f"{v:.6f}" for v in row["iou"])])
        with atomic_write(os.path.join(self.output_dir, "sem_seg_dice_per_image.csv"), "w") as f:
            f.write(buffer.getvalue())


@register_evaluator("sem_seg_dice")
def build_sem_seg_dice_evaluator(cfg, dataset_name: str, output_folder: str) -> SemSegDiceEvaluator:
    """Per-image Dice / IoU (percent), gathered over processes."""
    return SemSegDiceEvaluator(dataset_name, distributed=True, output_dir=output_folder)
