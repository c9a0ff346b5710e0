"""Boxes VertFound classifies: the record's ground truth, or a detector's results json.

A detections file is in COCO results format: a list of ``{"image_id", "bbox": [x, y, w, h],
"score", ...}`` in original image pixels (``category_id`` is ignored: VertFound assigns the
level). Boxes taken from it carry ``gt_indices`` -1 in the outputs.
"""
import json
import os
from typing import Any, Dict, Tuple

import torch
from torch import Tensor

__all__ = ["BOX_SOURCES", "load_detections"]

BOX_SOURCES = ("gt", "detections")


def load_detections(path: str, score_thresh: float = 0.0) -> Dict[Any, Tuple[Tensor, Tensor]]:
    """Detections per image id.

    Args:
        path: COCO results json.
        score_thresh: detections with a lower score are dropped.
    Returns:
        image_id -> (boxes [n, 4] float32 XYXY original pixels, scores [n]); images without a
        kept detection are absent.
    Raises:
        ValueError: missing file, not a list, or entries lacking image_id/bbox/score.
    """
    if not path or not os.path.isfile(path):
        raise ValueError(f"MODEL.VERTFOUND.DETECTIONS_JSON {path!r} does not exist; set it to a "
                         "COCO results json when BOX_SOURCE is 'detections'.")
    with open(path) as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a COCO results list of {{image_id, bbox, score}}.")
    grouped: Dict[Any, list] = {}
    for i, entry in enumerate(entries):
        if not {"image_id", "bbox", "score"} <= set(entry) or len(entry["bbox"]) != 4:
            raise ValueError(f"{path}: entry #{i} lacks image_id, a 4-number bbox or score.")
        if entry["score"] >= score_thresh:
            x, y, w, h = (float(v) for v in entry["bbox"])
            grouped.setdefault(entry["image_id"], []).append([x, y, x + w, y + h, entry["score"]])
    out = {}
    for image_id, rows in grouped.items():
        table = torch.tensor(rows, dtype=torch.float32)
        out[image_id] = (table[:, :4], table[:, 4])
    return out
