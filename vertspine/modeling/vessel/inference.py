"""Vessel inference on a whole volume: views (test-time augmentation, resampling), sliding-window
logits merged on the input grid, sigmoid, threshold, small-component removal.

One pipeline for ``train_net.py --eval-only`` (:class:`~.meta_arch.VesselSegmentor`) and
``tools/segment_vessels.py``. For a volume ``image`` [C, X, Y, Z] (already intensity-scaled by
``VolumeMapper``, ``INPUT.VOLUME.INTENSITY``) with voxel ``spacing`` (mm per array axis):

1. every view = one zoom factor ``s`` of ``TTA.SCALES`` x (no flip + each of ``TTA.FLIPS``): the
   volume is resampled (trilinear, ``align_corners=False``) to ``round(side * s * spacing /
   TARGET_SPACING)`` voxels per axis (``s`` alone without ``TARGET_SPACING``; no resampling when
   the size is unchanged), flipped, put through the sliding window, flipped back and its logits
   resampled (trilinear) onto the input grid. With ``AUTOCAST_BF16`` the network runs under
   ``torch.autocast`` bfloat16; MONAI blends the windows into buffers of the input's dtype
   (float32), and the views are merged in float32;
2. the views' logits are averaged (vesselFM's "mean" merging), then ``p = sigmoid(logit)``;
3. ``mask = p >= THRESHOLD`` (the voxel at exactly the threshold is vessel);
4. with ``MIN_COMPONENT_SIZE`` > 0, 26-connected components of the mask with fewer voxels are
   removed (``skimage.morphology.remove_small_objects(min_size, connectivity=3)`` semantics).

Everything stays in the input's array order and grid: outputs have the input's [X, Y, Z].
"""
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import Tensor

__all__ = ["VesselInference", "remove_small_components", "view_size"]

_KEY = "MODEL.VESSEL.INFERENCE"

WindowLogits = Callable[[Tensor], Tensor]  # [C, *spatial] volume -> [1, *spatial] logits


def view_size(shape: Sequence[int], scale: float, spacing: Optional[Sequence[float]] = None,
              target_spacing: Sequence[float] = ()) -> Tuple[int, ...]:
    """The voxel grid of one view: ``max(1, round(side * scale * spacing / target))`` per axis.

    Args:
        shape: the input's spatial sides [X, Y, Z].
        scale: the test-time zoom factor.
        spacing: the input's voxel spacing in mm per axis (needed with ``target_spacing``).
        target_spacing: the spacing in mm the network sees; empty keeps the input's.
    """
    factors = [scale] * len(shape)
    if len(target_spacing):
        factors = [scale * s / t for s, t in zip(spacing, target_spacing)]
    return tuple(max(1, int(round(side * f))) for side, f in zip(shape, factors))


def _resample(volume: Tensor, size: Sequence[int]) -> Tensor:
    """[C, *spatial] -> [C, *size], trilinear; returned as is when the size is unchanged."""
    if tuple(volume.shape[1:]) == tuple(size):
        return volume
    return F.interpolate(volume[None], size=tuple(size), mode="trilinear",
                         align_corners=False)[0]


def remove_small_components(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop the 26-connected foreground components of fewer than ``min_size`` voxels.

    Args:
        mask: bool [X, Y, Z].
        min_size: smallest component kept, in voxels; 0 or 1 keeps every component.
    Returns:
        bool [X, Y, Z].
    """
    from scipy import ndimage

    if min_size <= 1:
        return mask
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    keep = np.bincount(labels.ravel()) >= min_size
    keep[0] = False
    return keep[labels]


class VesselInference:
    """The pipeline of the module docstring: ``probability, mask = inference(window, image,
    spacing)``."""

    @configurable
    def __init__(self, *, threshold: float = 0.5, min_component_size: int = 0,
                 target_spacing: Sequence[float] = (),
                 flips: Sequence[Sequence[int]] = (), scales: Sequence[float] = (1.0,),
                 autocast_bf16: bool = False):
        """
        Args:
            threshold: probability at and above which a voxel is vessel, in [0, 1].
            min_component_size: smallest 26-connected component kept, in voxels (0: all).
            target_spacing: mm per array axis the network sees (3 values), or empty.
            flips: test-time flips, each the array axes (0..2) flipped together.
            scales: test-time zoom factors (> 0); (1.0,) without test-time zoom.
            autocast_bf16: run ``window`` under ``torch.autocast`` bfloat16.
        Raises:
            ValueError: a setting out of range, naming its ``MODEL.VESSEL.INFERENCE`` key.
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{_KEY}.THRESHOLD must be in [0, 1], got {threshold}.")
        if min_component_size < 0:
            raise ValueError(f"{_KEY}.MIN_COMPONENT_SIZE must be >= 0 voxels, got "
                             f"{min_component_size}.")
        if len(target_spacing) not in (0, 3) or any(s <= 0 for s in target_spacing):
            raise ValueError(f"{_KEY}.TARGET_SPACING must be 3 positive spacings in mm or [], "
                             f"got {list(target_spacing)}.")
        for flip in flips:
            if not flip or len(set(flip)) != len(flip) or any(a not in (0, 1, 2) for a in flip):
                raise ValueError(f"{_KEY}.TTA.FLIPS entry {list(flip)} must list distinct array "
                                 "axes among 0, 1, 2 (e.g. [[0], [1], [2]]).")
        if not scales or any(s <= 0 for s in scales):
            raise ValueError(f"{_KEY}.TTA.SCALES must be positive zoom factors, got "
                             f"{list(scales)}; [1.0] infers at the volume's own size.")
        self.threshold = float(threshold)
        self.min_component_size = int(min_component_size)
        self.target_spacing = tuple(float(s) for s in target_spacing)
        # tensor dims of [C, X, Y, Z] flipped per view: array axis a is dim a + 1
        self.flip_dims = [()] + [tuple(int(a) + 1 for a in flip) for flip in flips]
        self.scales = tuple(float(s) for s in scales)
        self.autocast_bf16 = bool(autocast_bf16)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.VESSEL.INFERENCE
        return {
            "threshold": node.THRESHOLD,
            "min_component_size": node.MIN_COMPONENT_SIZE,
            "target_spacing": node.TARGET_SPACING,
            "flips": node.TTA.FLIPS,
            "scales": node.TTA.SCALES,
            "autocast_bf16": node.AUTOCAST_BF16,
        }

    def logits(self, window: WindowLogits, image: Tensor,
               spacing: Optional[Sequence[float]] = None) -> Tensor:
        """Steps 1-2: the views' logits averaged on the input grid.

        Args:
            window: sliding-window inference, [C, *view] -> [1, *view] logits.
            image: [C, X, Y, Z] scaled volume.
            spacing: mm per array axis of ``image`` (needed with a target spacing).
        Returns:
            [1, X, Y, Z] merged logits.
        Raises:
            ValueError: a target spacing is set but ``spacing`` is missing.
        """
        if self.target_spacing and (spacing is None or len(spacing) != 3):
            raise ValueError(f"{_KEY}.TARGET_SPACING is set, but the volume has no 3-axis "
                             f"voxel spacing (got {spacing}); its record needs 'spacing'.")
        shape = tuple(image.shape[1:])
        total = None
        for scale in self.scales:
            view = _resample(image, view_size(shape, scale, spacing, self.target_spacing))
            for flip in self.flip_dims:
                with torch.autocast(image.device.type, torch.bfloat16,
                                    enabled=self.autocast_bf16):
                    logits = window(view.flip(flip) if flip else view).float()
                logits = _resample(logits.flip(flip) if flip else logits, shape)
                total = logits if total is None else total + logits
        return total / (len(self.scales) * len(self.flip_dims))

    def mask(self, probability: Tensor) -> Tensor:
        """Steps 3-4: [X, Y, Z] probabilities -> uint8 [X, Y, Z] mask (1 vessel), on the CPU."""
        mask = (probability >= self.threshold).cpu().numpy()
        mask = remove_small_components(mask, self.min_component_size)
        return torch.from_numpy(mask.astype(np.uint8))

    def __call__(self, window: WindowLogits, image: Tensor,
                 spacing: Optional[Sequence[float]] = None) -> Tuple[Tensor, Tensor]:
        """The whole pipeline: ``(probability float [X, Y, Z] on image's device, mask uint8
        [X, Y, Z] on the CPU)``; arguments as :meth:`logits`."""
        probability = self.logits(window, image, spacing)[0].sigmoid()
        return probability, self.mask(probability)
