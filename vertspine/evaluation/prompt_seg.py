"""The box-prompted segmentation evaluator (``evaluator_type "prompt_seg"``): DSC and NSD per label.

Per input (a 2D image, or one slice of a 3D volume, as :class:`PromptSegMapper` yields them;
or a whole volume): the model's box masks (``outputs[i]["prompt_seg"]``: ``masks`` bool
[B, H, W] (a volume: [B, D, H, W]) in the original image frame, ``iou_predictions`` [B]) are
merged into one label map with the inputs' ``gt_labels`` [B] as label values (where masks
overlap the higher predicted IoU wins, :func:`~.prompt_seg_metrics.merge_box_masks`) and
compared with the ground truth read from the input's npz (``file_name``): ``gts`` [H, W];
``gts[slice_index]`` of a [D, H, W] volume for an input with ``slice_index``, else the volume.
Rules and definitions: :mod:`.prompt_seg_metrics`. 2D images: NSD at ``NSD_TOLERANCE_2D`` px;
volumes and their slices: at ``NSD_TOLERANCE_3D`` mm with the voxel spacing in the array's
(z, y, x) order (a slice takes the in-plane y, x): the input's ``spacing`` (the mapper gives it
in that order), else the npz's, which the challenge's files store in SimpleITK's reverse
(x, y, z) order (``spacing_order="xyz"``, as :mod:`vertspine.data.prompt_seg` reads it; the
challenge's own evaluation applied it unreversed). Every label of the ground truth is scored,
also one without a box (it scores 0; the row's note names such labels and a warning counts
them).

:meth:`evaluate` gathers the per-case rows of every process and returns, on the main process,
``{"prompt_seg": {"DSC", "NSD", "DSC-<modality>", "NSD-<modality>"}}`` (percent, the mean over
cases of each case's mean over labels); it logs the per-modality table and writes
``prompt_seg_per_case.csv`` and ``prompt_seg_per_label.csv`` (atomically). Optional overlays:
``prompt_seg_overlays/<case>[_z<slice>].png``, the image with the ground-truth contours in
green and the prediction's in red, for the first ``num_overlays`` inputs of each process.
"""
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from detectron2.config import CfgNode
from detectron2.evaluation import DatasetEvaluator

from vertspine.data.image_io import min_max_to_uint8
from vertspine.utils.file_io import write_png

from .build import register_evaluator
from .gather import gather_on_main
from .prompt_seg_config import add_prompt_seg_eval_config
from .prompt_seg_metrics import (PLANAR_NSD_MODES, SPACING_ORDERS, case_scores, merge_box_masks,
                                 spacing_in_array_order)
from .prompt_seg_report import (case_row, modality_table, summarize, write_case_csv,
                                write_label_csv)

__all__ = ["PromptSegEvaluator", "build_prompt_seg_evaluator"]

logger = logging.getLogger(__name__)

_GT_COLOUR, _PRED_COLOUR = (0, 255, 0), (0, 0, 255)  # BGR


class PromptSegEvaluator(DatasetEvaluator):
    """Mean DSC / NSD of box-prompted segmentation (see the module docstring)."""

    def __init__(self, dataset_name: str, *, tolerance_2d: float = 2.0,
                 tolerance_3d: float = 2.0, planar_nsd: str = "contour",
                 gate_dsc: Optional[float] = None, num_overlays: int = 0,
                 spacing_order: str = "xyz", output_dir: Optional[str] = None,
                 distributed: bool = True):
        """
        Args:
            dataset_name: the dataset evaluated (named in the log).
            tolerance_2d: NSD tolerance in px for 2D images.
            tolerance_3d: NSD tolerance in mm for 3D volumes and their slices.
            planar_nsd: "contour" or "slab" (:func:`~.prompt_seg_metrics.case_scores`).
            gate_dsc: NSD is 0 for a case whose mean DSC (0-1) is not above it; None = off.
            num_overlays: overlay PNGs each process writes (needs ``output_dir``).
            spacing_order: the order of the npz's stored ``spacing``, used for inputs without
                ``spacing``: "xyz" (the challenge's files) or "zyx" (the array's order).
            output_dir: where the CSV files and overlays go (None = not written).
            distributed: gather the rows of every process.
        """
        if tolerance_2d < 0 or tolerance_3d < 0:
            raise ValueError("TEST.PROMPT_SEG.NSD_TOLERANCE_2D/3D must be >= 0, got "
                             f"{tolerance_2d}, {tolerance_3d}.")
        if planar_nsd not in PLANAR_NSD_MODES:
            raise ValueError(f"TEST.PROMPT_SEG.PLANAR_NSD must be one of {PLANAR_NSD_MODES}, "
                             f"got {planar_nsd!r}.")
        if spacing_order not in SPACING_ORDERS:
            raise ValueError(f"spacing_order must be one of {SPACING_ORDERS}, "
                             f"got {spacing_order!r}.")
        self._spacing_order = spacing_order
        self._dataset_name = dataset_name
        self._tolerance_2d, self._tolerance_3d = float(tolerance_2d), float(tolerance_3d)
        self._planar_nsd = planar_nsd
        self._gate_dsc = gate_dsc
        self._num_overlays = int(num_overlays) if output_dir else 0
        self._output_dir = output_dir
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._rows: List[Dict[str, Any]] = []
        self._overlays_written = 0
        self._loaded: Tuple[Optional[str], Any] = (None, None)

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Score each input's merged box masks against its npz's ground truth.

        Args:
            inputs: mapper outputs with ``file_name`` (the npz), ``gt_labels`` [B] and, for a
                slice of a 3D volume, ``slice_index``; ``modality`` when the dataset has one.
            outputs: model outputs with ``prompt_seg``: ``masks`` bool [B, H, W] and
                ``iou_predictions`` [B], in the frame of the npz's ``gts`` (slice).
        Raises:
            KeyError: an output without ``prompt_seg`` or an input without ``gt_labels``.
            ValueError: the masks' frame differs from the ground truth's, or the npz is unusable.
        """
        for record, output in zip(inputs, outputs):
            file_name = record["file_name"]
            if "prompt_seg" not in output or "gt_labels" not in record:
                raise KeyError(f"'{file_name}': the prompt_seg evaluator needs the model's "
                               "'prompt_seg' output (a PromptSegmentor) and the input's "
                               "'gt_labels' (INPUT.DATASET_MAPPER PromptSegMapper).")
            prediction = output["prompt_seg"]
            labels = _numpy(record["gt_labels"]).astype(np.int64)
            masks = _numpy(prediction["masks"]).astype(bool)
            slice_index = record.get("slice_index")
            gt, spacing, from_volume = self._ground_truth(file_name, slice_index,
                                                          record.get("spacing"))
            if masks.shape[1:] != gt.shape:
                raise ValueError(f"'{file_name}': the predicted masks {masks.shape} are not in the "
                                 f"frame of its ground truth {gt.shape}; the model must return "
                                 "masks at the original image size (height, width), and a slice "
                                 "of a volume needs the input's slice_index.")
            merged = merge_box_masks(masks, _numpy(prediction["iou_predictions"]), labels)
            tolerance = self._tolerance_3d if from_volume else self._tolerance_2d
            scores = case_scores(gt, merged, spacing=spacing, tolerance=tolerance,
                                 gate_dsc=self._gate_dsc, planar_nsd=self._planar_nsd)
            unprompted = np.setdiff1d(np.unique(gt[gt > 0]), labels)
            note = f"labels without a box: {unprompted.tolist()}" if len(unprompted) else ""
            row = case_row(os.path.basename(file_name), record.get("modality") or "unknown",
                           scores, slice_index=slice_index, note=note)
            self._rows.append(dict(row, unprompted=len(unprompted)))
            if self._overlays_written < self._num_overlays:
                self._write_overlay(file_name, slice_index, gt, merged)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Mean DSC/NSD overall and per modality (percent) on the main process ({} elsewhere)."""
        rows = gather_on_main(self._rows, self._distributed)
        if rows is None:
            return {}
        if not rows:
            logger.warning("[PromptSegEvaluator] no predictions for '%s'.", self._dataset_name)
            return {}
        unprompted = sum(r["unprompted"] for r in rows)
        if unprompted:
            logger.warning("%s: %d ground-truth labels had no box (scored 0); the mapper must give "
                           "a box per labelled object at test time.", self._dataset_name,
                           unprompted)
        logger.info("Box-prompted segmentation on %s (percent):\n%s", self._dataset_name,
                    modality_table(rows))
        if self._output_dir:
            write_case_csv(os.path.join(self._output_dir, "prompt_seg_per_case.csv"), rows)
            write_label_csv(os.path.join(self._output_dir, "prompt_seg_per_label.csv"), rows)
        return {"prompt_seg": summarize(rows)}

    def _ground_truth(self, file_name: str, slice_index: Optional[int],
                      input_spacing: Optional[Tuple[float, float, float]]
                      ) -> Tuple[np.ndarray, Tuple[float, ...], bool]:
        """The npz's ``gts`` (or its slice), the spacing in array-axis order (in-plane for a
        slice, (1, 1) px for a 2D image) and whether it comes from a volume; the last file read
        is kept."""
        if self._loaded[0] != file_name:
            self._loaded = (file_name, _read_gts(file_name, self._spacing_order))
        gts, spacing = self._loaded[1]
        if input_spacing is not None and gts.ndim == 3:
            spacing = tuple(float(s) for s in input_spacing)
        if gts.ndim == 2:
            if slice_index is not None:
                raise ValueError(f"'{file_name}': 'gts' is 2D {gts.shape}, but the input has "
                                 f"slice_index {slice_index}.")
            return gts, (1.0, 1.0), False
        if slice_index is None:
            return gts, spacing, True
        if not 0 <= int(slice_index) < len(gts):
            raise ValueError(f"'{file_name}': slice_index {slice_index} is outside the volume "
                             f"{gts.shape} (0..{len(gts) - 1}).")
        return gts[int(slice_index)], spacing[1:], True

    def _write_overlay(self, file_name: str, slice_index: Optional[int], gt: np.ndarray,
                       pred: np.ndarray) -> None:
        if gt.ndim == 3:  # a whole volume: its slice with the most ground truth
            slice_index = int(np.count_nonzero(gt, axis=(1, 2)).argmax())
            gt, pred = gt[slice_index], pred[slice_index]
        with np.load(file_name) as npz:
            image = npz["imgs"] if "imgs" in npz.files else None
        if image is None:
            image = np.zeros(gt.shape, np.uint8)
        elif slice_index is not None:
            image = image[int(slice_index)]
        stem = os.path.splitext(os.path.basename(file_name))[0]
        suffix = "" if slice_index is None else f"_z{int(slice_index):04d}"
        path = os.path.join(self._output_dir, "prompt_seg_overlays", f"{stem}{suffix}.png")
        write_png(path, contour_overlay(image, gt, pred))
        self._overlays_written += 1


def contour_overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The image (min-max to uint8, grey to BGR) with each label's contour: ground truth
    green, prediction red.

    Args:
        image: [H, W] or [H, W, 3] (RGB, as the challenge's ``imgs``), any real dtype.
        gt, pred: [H, W] integer label maps.
    Returns:
        [H, W, 3] uint8 BGR.
    """
    import cv2

    canvas = image if image.dtype == np.uint8 else min_max_to_uint8(image)
    canvas = np.ascontiguousarray(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR) if canvas.ndim == 2
                                  else canvas[..., ::-1])
    for labels, colour in ((gt, _GT_COLOUR), (pred, _PRED_COLOUR)):
        for label in np.unique(labels[labels > 0]):
            contours, _ = cv2.findContours((labels == label).astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(canvas, contours, -1, colour, 1)
    return canvas


def _read_gts(file_name: str, spacing_order: str) -> Tuple[np.ndarray, Tuple[float, ...]]:
    """(``gts``, spacing in the array's (z, y, x) order) of an npz whose stored ``spacing``
    (3 values, needed for a volume) is in ``spacing_order``."""
    if not os.path.isfile(file_name):
        raise ValueError(f"'{file_name}': the npz with the ground truth does not exist.")
    with np.load(file_name) as npz:
        if "gts" not in npz.files:
            raise ValueError(f"'{file_name}' has no 'gts' array (keys: {npz.files}); the "
                             "prompt_seg evaluator needs a labelled dataset.")
        gts = npz["gts"]
        spacing = npz["spacing"] if "spacing" in npz.files else None
    if gts.ndim == 3:
        if spacing is None or np.asarray(spacing).size != 3:
            raise ValueError(f"'{file_name}': a 3D 'gts' {gts.shape} needs 'spacing' (3 values in "
                             "mm, the challenge's (x, y, z) order); add it to the npz.")
        return gts, spacing_in_array_order(spacing, spacing_order)
    return gts, (1.0, 1.0)


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _settings(cfg: CfgNode) -> CfgNode:
    """``cfg.TEST.PROMPT_SEG``, or its defaults when the config lacks the node."""
    if "PROMPT_SEG" in cfg.TEST:
        return cfg.TEST.PROMPT_SEG
    return add_prompt_seg_eval_config(CfgNode({"TEST": CfgNode()})).TEST.PROMPT_SEG


@register_evaluator("prompt_seg")
def build_prompt_seg_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str
                               ) -> PromptSegEvaluator:
    """DSC / NSD per label with the ``TEST.PROMPT_SEG`` settings, gathered over processes."""
    settings = _settings(cfg)
    return PromptSegEvaluator(
        dataset_name,
        tolerance_2d=settings.NSD_TOLERANCE_2D,
        tolerance_3d=settings.NSD_TOLERANCE_3D,
        planar_nsd=settings.PLANAR_NSD,
        gate_dsc=settings.GATE_DSC if settings.GATE_DSC >= 0 else None,
        num_overlays=settings.NUM_OVERLAYS,
        output_dir=output_folder,
    )
