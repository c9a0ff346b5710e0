"""3D box prompts segmented slice by slice: each slice encoded once, boxes propagated from the
middle slice to both ends of their z-range.

A 3D box ``[x_min, y_min, z_min, x_max, y_max, z_max]`` (voxel indices of a (D, H, W) volume:
x along W, y along H, z along D; both ends inclusive) is segmented at its middle slice
``z_min + (z_max - z_min) // 2`` with its own 2D box, then slice by slice up to ``z_max`` and down
to ``z_min`` (LiteMedSAM/DAFT stop one short of ``z_max``). Each next slice is prompted with the
bounding box of the previous slice's mask, enlarged on each side by ``expand`` pixels of a
256-px frame (LiteMedSAM's ``get_bbox256(mask, bbox_shift=3)`` on its 256-px input), that is
``expand / 256`` of the slice's longest side whatever the model's input size. When the previous
mask is empty or its predicted IoU fell below ``min_iou``, propagation in that direction either
stops (``on_collapse="stop"``: the remaining slices stay background) or retries once with the
box's own 2D rectangle (``"box"``, the baseline's fallback) and stops if that collapses too.
With ``within_prompt`` (the default) each slice's mask is confined to that slice's prompt box
(the given rectangle on the middle slice): an object's outline then moves at most ``expand`` px
per slice, and a mask cannot spill onto a neighbouring structure and widen the next prompt to it
in one step (the originals do not confine, and their masks can drift onto a neighbour).
With ``mask_prompt`` each propagated slice also gets the previous slice's mask (after the
confinement) as a mask prompt; the middle slice and a fallback to the box get none. The
given rectangle bounds the object on the middle slice only (the challenge's boxes: the z-range
and the middle slice's 2D box; :func:`vertspine.data.prompt_seg.prompt_boxes`), so the other
slices are not held to it: a tube that runs across slices leaves it.

Every slice inside any box's z-range is encoded exactly once (in batches), before any box is
decoded, and reused by every box. Where the masks of several boxes overlap on a slice, the
voxel takes the label of the box whose mask there has the higher predicted IoU
(``overlap="iou"``; the originals let the last box win), the fewer pixels (``"smaller"``: a
structure nested in another keeps its pixels) or, pixel by pixel, the box whose reference
intensity (the median of the volume over its mask on its middle slice, or its first non-empty
slice) is nearest the voxel's in-plane smoothed value (``"intensity"``; see
:func:`~vertspine.evaluation.prompt_seg_metrics.overlap_scores`). Labels are ``box index + 1``
in ``uint16``, so 256 and more boxes survive.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from vertspine.evaluation.prompt_seg_metrics import (OVERLAP_POLICIES, overlap_scores,
                                                     reference_intensity)

__all__ = ["COLLAPSE_POLICIES", "EXPAND_FRAME", "PropagationReport", "SliceSegmenter", "mask_box",
           "propagate_boxes"]

COLLAPSE_POLICIES = ("stop", "box")
EXPAND_FRAME = 256  # px: ``expand`` is measured in a frame of this side (LiteMedSAM's input)


@dataclass
class SliceSegmenter:
    """What propagation needs of a model, as two callables.

    Attributes:
        embed: slices [n, H, W] (the volume's values) -> a sequence of n embeddings (any
            type; one per slice, handed back to ``decode``).
        decode: (embedding of one slice, boxes [B, 4] float XYXY in that slice's pixel frame)
            -> (masks bool [B, H, W], predicted IoU float [B]); with mask prompts called as
            ``decode(embedding, boxes, mask_prompts)``, ``mask_prompts`` bool [B, H, W] in the
            same frame.
    """

    embed: Callable[[np.ndarray], Sequence[Any]]
    decode: Callable[[Any, np.ndarray], Tuple[np.ndarray, np.ndarray]]


@dataclass
class PropagationReport:
    """What a volume's propagation did.

    Attributes:
        distinct_slices: slices inside any box's z-range.
        encoder_calls: slices encoded (equals ``distinct_slices``).
        slices_per_box: slices segmented for each box (its mask may be empty there).
        stopped: for each box, the z where propagation stopped early in each direction
            ({"up": z or None, "down": z or None}).
    """

    distinct_slices: int = 0
    encoder_calls: int = 0
    slices_per_box: List[int] = field(default_factory=list)
    stopped: List[Dict[str, Any]] = field(default_factory=list)


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight XYXY box (float, pixel indices, inclusive) of a 2D mask's foreground; [] if empty."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return np.zeros(0, np.float32)
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], np.float32)


def _check_boxes(boxes: np.ndarray, shape: Tuple[int, int, int]) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 6) if np.size(boxes) else np.zeros((0, 6))
    depth, height, width = shape
    for i, (x0, y0, z0, x1, y1, z1) in enumerate(boxes):
        if x0 > x1 or y0 > y1 or z0 > z1:
            raise ValueError(f"Box {i} {boxes[i].tolist()} has a minimum above its maximum "
                             "(x_min, y_min, z_min, x_max, y_max, z_max).")
        if z0 < 0 or z1 > depth - 1 or x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
            raise ValueError(f"Box {i} {boxes[i].tolist()} lies outside the volume of (D, H, W) "
                             f"{shape}: z must be in 0..{depth - 1}, and the rectangle must "
                             "overlap the slice.")
    return boxes


def propagate_boxes(volume: np.ndarray, boxes: np.ndarray, segmenter: SliceSegmenter, *,
                    expand: float = 3.0, min_iou: float = 0.0, on_collapse: str = "stop",
                    batch_slices: int = 8, within_prompt: bool = True, overlap: str = "iou",
                    mask_prompt: bool = False) -> Tuple[np.ndarray, np.ndarray, PropagationReport]:
    """Segment every 3D box of a volume.

    Args:
        volume: [D, H, W] values.
        boxes: [N, 6] ``x_min, y_min, z_min, x_max, y_max, z_max``, voxel indices, inclusive.
        segmenter: the model (see :class:`SliceSegmenter`).
        expand: pixels of a 256-px frame added to each side of a propagated box.
        min_iou: a mask with predicted IoU below this counts as collapsed.
        on_collapse: "stop" or "box" (see the module docstring).
        batch_slices: slices per encoder call.
        within_prompt: confine each mask to its prompt box (module docstring).
        overlap: "iou", "smaller" or "intensity" (module docstring).
        mask_prompt: prompt each propagated slice with the previous slice's mask too.
    Returns:
        (segs uint16 [D, H, W]: 0 background, box i -> i + 1; scores float32 [D, H, W]: the
        predicted IoU of the winning mask, 0 on background; the report).
    Raises:
        ValueError: a box with min > max or outside the volume, a bad ``on_collapse`` or
            ``overlap``.
    """
    if on_collapse not in COLLAPSE_POLICIES:
        raise ValueError(f"on_collapse '{on_collapse}' is not one of {COLLAPSE_POLICIES}.")
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap '{overlap}' is not one of {OVERLAP_POLICIES}.")
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"The volume must be (D, H, W); got shape {volume.shape}.")
    boxes = _check_boxes(boxes, volume.shape)
    depth, height, width = volume.shape
    segs = np.zeros(volume.shape, np.uint16)
    scores = np.zeros(volume.shape, np.float32)
    priority = np.full(volume.shape, -np.inf)  # the winning mask's overlap score
    report = PropagationReport()
    wanted = sorted({z for box in boxes for z in range(int(box[2]), int(box[5]) + 1)})
    embeddings: Dict[int, Any] = {}
    for start in range(0, len(wanted), max(1, batch_slices)):
        chunk = wanted[start:start + batch_slices]
        for z, embedding in zip(chunk, segmenter.embed(volume[chunk])):
            embeddings[z] = embedding
    report.distinct_slices = report.encoder_calls = len(embeddings)
    margin = expand * max(height, width) / EXPAND_FRAME
    limit = np.array([width - 1, height - 1, width - 1, height - 1], np.float32)
    rows, cols = np.arange(height)[:, None], np.arange(width)[None, :]
    references: Dict[int, float] = {}  # "intensity": each box's, from its first non-empty mask

    def segment(z: int, prompt: np.ndarray, label: int,
                previous: Optional[np.ndarray] = None) -> Tuple[np.ndarray, float]:
        extra = () if previous is None else (previous[None],)
        masks, ious = segmenter.decode(embeddings[z], prompt[None].astype(np.float32), *extra)
        mask, iou = np.asarray(masks[0], bool), float(ious[0])
        if within_prompt:
            mask = mask & ((cols >= np.floor(prompt[0])) & (cols <= np.ceil(prompt[2]))
                           & (rows >= np.floor(prompt[1])) & (rows <= np.ceil(prompt[3])))
        if overlap == "intensity" and label not in references and mask.any():
            references[label] = reference_intensity(volume[z], mask)
        rank = np.broadcast_to(overlap_scores(mask[None], [iou], overlap, volume[z],
                                              [references.get(label, np.nan)])[0], mask.shape)
        wins = mask & (rank > priority[z])
        segs[z][wins], scores[z][wins], priority[z][wins] = label, iou, rank[wins]
        return mask, iou

    for index, box in enumerate(boxes):
        label = index + 1
        rectangle = np.clip(box[[0, 1, 3, 4]].astype(np.float32), 0, limit)
        z_min, z_max = int(box[2]), int(box[5])
        z_mid = z_min + (z_max - z_min) // 2
        middle, middle_iou = segment(z_mid, rectangle, label)
        count, stopped = 1, {"up": None, "down": None}
        for direction, steps in (("up", range(z_mid + 1, z_max + 1)),
                                 ("down", range(z_mid - 1, z_min - 1, -1))):
            previous, previous_iou, fell_back = middle, middle_iou, False
            for z in steps:
                tight = mask_box(previous)
                collapsed = tight.size == 0 or previous_iou < min_iou
                if collapsed and (on_collapse == "stop" or fell_back):
                    stopped[direction] = z
                    break
                prompt = rectangle if collapsed else np.clip(
                    tight + np.array([-margin, -margin, margin, margin]), 0, limit)
                fell_back = collapsed
                given = previous if mask_prompt and not collapsed else None
                previous, previous_iou = segment(z, prompt, label, given)
                count += 1
        report.slices_per_box.append(count)
        report.stopped.append(stopped)
    return segs, scores, report
