"""VerSe CT volumes -> sagittal PNG slices with one COCO box per visible vertebra.

Per scan (see :mod:`.volume` for frames): the mid-sagittal x from the centroids (or the mask),
``num_slices`` slices ``slice_step_mm`` apart around it, bone window, square pixels of
``spacing_mm``, one box per vertebra label whose mask area on the slice is at least
``min_box_area`` output pixels. Category id = VerSe label (1..25 = C1..L6). Labels without a
category: sacrum (26) and coccyx (27) are left out; T13 (28) is left out too with
``t13="skip"`` (default; the transitional vertebra then stays unboxed on the image) or makes
the whole slice be dropped with ``t13="drop-slice"``; both are counted in the report. Slices
without any box are dropped unless ``keep_empty``. Annotations of an image are ordered by
label, i.e. cranial to caudal, the order VertFound's sequence prior relies on.

Output layout (what ``verse19_*``/``verse20_*`` in :mod:`vertspine.data.builtin` expect)::

    <output>/images/<split>/<scan>_x<index>.png
    <output>/annotations/<name>_<split>.json     for split in train, val, test (all written)

Every file is written atomically; the images' ``file_name`` is relative to
``<output>/images/<split>``.
"""
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from vertspine.utils.file_io import write_json, write_png

from ..spine_categories import SPLITS, VERTEBRA_LEVELS
from .discovery import VerseScan, assign_splits, find_verse_scans
from .labels import LEVEL_LABELS, T13_LABEL, verse_categories, verse_label_name
from .volume import load_scan, render_slice, sagittal_centre, slice_boxes, slice_positions

__all__ = ["ConversionReport", "VerseConversionConfig", "convert_verse", "verse_output_paths"]


@dataclass(frozen=True)
class VerseConversionConfig:
    """How volumes become slices. Distances in mm, areas in output pixels^2."""

    num_slices: int = 12  # sagittal slices per scan
    slice_step_mm: float = 1.5  # distance between neighbouring slices
    spacing_mm: float = 1.0  # output pixel size, both axes
    window_center: float = 400.0  # bone window centre (HU)
    window_width: float = 1800.0  # bone window width (HU): [-500, 1300] by default
    min_box_area: float = 50.0  # smallest vertebra mask area on a slice that gets a box
    t13: str = "skip"  # "skip" T13 boxes, or "drop-slice" slices showing T13
    keep_empty: bool = False  # keep slices without any box (as negatives)
    split_mode: str = "auto"  # "auto", "folders" (VerSe release folders) or "random"
    split_ratios: Tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test (random mode)
    seed: int = 0  # shuffle seed of random splits

    def __post_init__(self):
        if self.num_slices < 1 or self.slice_step_mm <= 0 or self.spacing_mm <= 0:
            raise ValueError("num_slices must be >= 1, slice_step_mm and spacing_mm > 0; got "
                             f"{self.num_slices}, {self.slice_step_mm}, {self.spacing_mm}.")
        if self.window_width <= 0:
            raise ValueError(f"window_width must be > 0, got {self.window_width}.")
        if self.t13 not in ("skip", "drop-slice"):
            raise ValueError(f"t13 policy '{self.t13}' is not 'skip' or 'drop-slice'.")


@dataclass
class ConversionReport:
    """What the conversion wrote and left out (per split where it matters)."""

    name: str
    patients: Dict[str, int] = field(default_factory=dict)
    scans: Dict[str, int] = field(default_factory=dict)
    slices: Dict[str, int] = field(default_factory=dict)
    boxes: Dict[str, Counter] = field(default_factory=dict)  # split -> {level name: count}
    t13_boxes_skipped: int = 0
    t13_slices_dropped: int = 0
    other_labels_skipped: Counter = field(default_factory=Counter)  # name -> boxes
    empty_slices_dropped: int = 0
    centre_sources: Counter = field(default_factory=Counter)  # "centroids"/"mask"/...
    unpaired_files: List[str] = field(default_factory=list)
    json_files: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"VerSe conversion '{self.name}':"]
        for split in SPLITS:
            total = sum(self.boxes.get(split, Counter()).values())
            lines.append(f"  {split:5s}: {self.patients.get(split, 0)} patients, "
                         f"{self.scans.get(split, 0)} scans, {self.slices.get(split, 0)} slices, "
                         f"{total} boxes -> {self.json_files.get(split, '')}")
        lines.append("  boxes per level (" + "/".join(SPLITS) + "):")
        for level in VERTEBRA_LEVELS:
            counts = [self.boxes.get(split, Counter())[level] for split in SPLITS]
            if any(counts):
                lines.append(f"    {level:3s} " + " ".join(f"{c:6d}" for c in counts))
        lines.append(f"  T13 (label {T13_LABEL}): {self.t13_boxes_skipped} boxes skipped, "
                     f"{self.t13_slices_dropped} slices dropped")
        if self.other_labels_skipped:
            lines.append("  other labels skipped (boxes): " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.other_labels_skipped.items())))
        lines.append(f"  slices without boxes dropped: {self.empty_slices_dropped}")
        lines.append("  mid-sagittal centre from: " + ", ".join(
            f"{k} {v}" for k, v in sorted(self.centre_sources.items())))
        if self.unpaired_files:
            lines.append(f"  files without CT/mask partner, left out: {len(self.unpaired_files)} "
                         f"(first: {self.unpaired_files[0]})")
        return "\n".join(lines)


def verse_output_paths(output_root: str, name: str) -> Dict[str, Dict[str, str]]:
    """{split: {"json_file", "image_root"}} of a converted dataset called ``name``."""
    return {
        split: {
            "json_file": os.path.join(output_root, "annotations", f"{name}_{split}.json"),
            "image_root": os.path.join(output_root, "images", split),
        }
        for split in SPLITS
    }


def convert_verse(
    input_root: str, output_root: str, name: str, config: Optional[VerseConversionConfig] = None
) -> ConversionReport:
    """Convert every scan under ``input_root`` into ``output_root`` (layout in the module doc).

    Args:
        input_root: a VerSe release folder, or a folder holding several.
        output_root: where images/ and annotations/ go, e.g. ``datasets/verse19``.
        name: the json prefix, e.g. "verse19" (giving ``verse19_train.json``...).
        config: conversion parameters; None means the defaults.
    Returns:
        the report (also what ``tools/convert_verse.py`` prints).
    Raises:
        FileNotFoundError / ValueError: naming the offending file.
    """
    config = config or VerseConversionConfig()
    scans, unpaired = find_verse_scans(input_root)
    splits = assign_splits(scans, mode=config.split_mode, ratios=config.split_ratios, seed=config.seed)
    report = ConversionReport(name=name, unpaired_files=unpaired)
    paths = verse_output_paths(output_root, name)
    for split in SPLITS:
        images, annotations = [], []
        for scan in splits[split]:
            _convert_scan(scan, config, paths[split]["image_root"], images, annotations, report, split)
        report.patients[split] = len({s.patient_id for s in splits[split]})
        report.scans[split] = len(splits[split])
        report.slices[split] = len(images)
        coco = {
            "info": {"description": f"{name} {split}: sagittal slices of VerSe CTs",
                     "conversion": asdict(config)},
            "images": images,
            "annotations": annotations,
            "categories": verse_categories(),
        }
        write_json(paths[split]["json_file"], coco, indent=None)
        report.json_files[split] = paths[split]["json_file"]
    return report


def _convert_scan(
    scan: VerseScan,
    config: VerseConversionConfig,
    image_root: str,
    images: List[Dict[str, Any]],
    annotations: List[Dict[str, Any]],
    report: ConversionReport,
    split: str,
) -> None:
    """Append one scan's slices to ``images``/``annotations`` and write their PNGs."""
    volume = load_scan(scan)
    centre, source = sagittal_centre(volume, scan.centroid_path)
    report.centre_sources[source] += 1
    boxes_per_level = report.boxes.setdefault(split, Counter())
    positions = slice_positions(centre, config.num_slices, config.slice_step_mm,
                                volume.spacing[0], volume.mask.shape[0])
    ct_slices = volume.ct_slices(positions) if positions else {}
    for x in positions:
        image, scales = render_slice(
            ct_slices[x], volume.spacing[1:],
            window=(config.window_center, config.window_width), spacing_mm=config.spacing_mm,
        )
        boxes = slice_boxes(volume.mask[x], scales, config.min_box_area)
        has_t13 = any(b.label == T13_LABEL for b in boxes)
        if has_t13 and config.t13 == "drop-slice":
            report.t13_slices_dropped += 1
            continue
        kept = []
        for box in boxes:
            if box.label in LEVEL_LABELS:
                kept.append(box)
            elif box.label == T13_LABEL:
                report.t13_boxes_skipped += 1
            else:
                report.other_labels_skipped[verse_label_name(box.label)] += 1
        if not kept and not config.keep_empty:
            report.empty_slices_dropped += 1
            continue
        image_id = len(images) + 1
        file_name = f"{scan.scan_id}_x{x:04d}.png"
        write_png(os.path.join(image_root, file_name), image)
        images.append({
            "id": image_id, "file_name": file_name, "height": int(image.shape[0]),
            "width": int(image.shape[1]), "scan": scan.scan_id, "patient": scan.patient_id,
            "slice_index": int(x), "spacing_mm": config.spacing_mm,
        })
        for box in kept:
            x0, y0, x1, y1 = box.box
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": box.label,
                "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)],
                "area": round(box.area, 3), "iscrowd": 0,
            })
            boxes_per_level[verse_label_name(box.label)] += 1
