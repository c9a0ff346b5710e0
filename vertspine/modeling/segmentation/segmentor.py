"""Semantic segmentation of images and volumes: the ``Segmentor`` meta-architecture.

One model for 2D and 3D (``spatial_dims``): a network from ``SEG_NETWORK_REGISTRY`` (smp U-Net,
MONAI DynUNet) trained with cross-entropy + soft Dice, optionally + soft clDice
(:func:`dice_ce_loss`).

Input: detectron2-style dicts with ``image`` [C, *spatial] (2D: [C, H, W], 0-255 in
``INPUT.FORMAT`` order; 3D: [C, X, Y, Z] float, scaled by the mapper) and, in training,
``sem_seg`` [*spatial] int64 labels (0 background, 1..K, ``ignore_value`` ignored). Images are
normalised with ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` and padded (at the end of every axis) to
the network's size divisibility; targets are padded with ``ignore_value``.

Output at inference: ``sem_seg`` [K + 1, *spatial] class probabilities (softmax, or
[1 - p, p] for a sigmoid logit). 2D: the whole image in one pass, the logits cropped to the
unpadded image and resized (bilinear) to the record's ``height`` x ``width``
(detectron2's ``sem_seg_postprocess``). 3D: MONAI ``sliding_window_inference`` over the whole
volume (window logits blended, then the activation), at the input volume's size.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.postprocessing import sem_seg_postprocess
from torch import Tensor, nn

from .loss import check_cldice_settings, dice_ce_loss
from .registry import build_segmentation_network, output_channels

__all__ = ["Segmentor", "pad_batch"]

_BLEND_MODES = ("gaussian", "constant")


def pad_batch(tensors: Sequence[Tensor], size_divisibility: Sequence[int],
              pad_value: float) -> Tuple[Tensor, List[Tuple[int, ...]]]:
    """Stack tensors of different spatial sizes, padding the end of each spatial axis.

    Args:
        tensors: each [..., *spatial] with ``len(size_divisibility)`` spatial axes and the same
            leading shape (e.g. images [C, H, W] or labels [X, Y, Z]).
        size_divisibility: the padded side along each axis is the smallest multiple of this
            that holds every tensor.
        pad_value: value of the padding.
    Returns:
        ``(batch [N, ..., *padded], sizes)``, ``sizes`` the unpadded spatial sizes.
    """
    dims = len(size_divisibility)
    sizes = [tuple(t.shape[-dims:]) for t in tensors]
    padded = [-(-max(size[axis] for size in sizes) // step) * step
              for axis, step in enumerate(size_divisibility)]
    batch = tensors[0].new_full((len(tensors), *tensors[0].shape[:-dims], *padded), pad_value)
    for tensor, slot in zip(tensors, batch):
        slot[(..., *(slice(0, n) for n in tensor.shape[-dims:]))].copy_(tensor)
    return batch, sizes


@META_ARCH_REGISTRY.register()
class Segmentor(nn.Module):
    """A registered segmentation network trained with CE + soft Dice; outputs ``sem_seg``."""

    @configurable
    def __init__(self, *, unet: nn.Module, spatial_dims: int, num_classes: int,
                 size_divisibility: Sequence[int], pixel_mean: Sequence[float],
                 pixel_std: Sequence[float], activation: str = "softmax",
                 ignore_value: int = 255, ce_weight: float = 1.0, dice_weight: float = 1.0,
                 dice_include_background: bool = True, dice_squared_pred: bool = False,
                 cldice_weight: float = 0.0, cldice_iterations: int = 3,
                 freeze_encoder: bool = False, roi_size: Sequence[int] = (),
                 sw_overlap: float = 0.5, sw_batch_size: int = 4, sw_mode: str = "gaussian",
                 sw_sigma_scale: float = 0.125):
        """
        Args:
            unet: the network, [N, C, *spatial] -> [N, K + 1 (softmax) or 1 (sigmoid),
                *spatial] logits; in training with deep supervision [N, heads, ., *spatial].
                (The attribute keeps the name of the LVM-Med ``UNetSegmentor`` it replaces,
                so those checkpoints load.)
            spatial_dims: 2 or 3.
            num_classes: K foreground classes.
            size_divisibility: per spatial axis, the multiple the network's input sides must be.
            pixel_mean, pixel_std: per-channel normalisation in the input's channel order.
            activation: "softmax" or "sigmoid" (one logit, ``num_classes`` 1).
            ignore_value: label left out of the loss; also the target padding.
            ce_weight, dice_weight, dice_include_background, dice_squared_pred, cldice_weight,
                cldice_iterations: see :func:`dice_ce_loss` (``cldice_weight`` 0: no clDice).
            freeze_encoder: no gradients to ``unet.encoder`` and its BatchNorm kept in eval mode.
            roi_size, sw_overlap, sw_batch_size, sw_mode, sw_sigma_scale: sliding-window
                inference of volumes (3D only): window size in voxels, overlap fraction,
                windows per call, blending ("gaussian" or "constant") and gaussian sigma as a
                fraction of the window.
        Raises:
            ValueError: a setting out of range, naming its ``MODEL.SEGMENTOR`` key.
        """
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"MODEL.SEGMENTOR.SPATIAL_DIMS must be 2 or 3, got {spatial_dims}.")
        output_channels(num_classes, activation)  # checks the head settings
        check_cldice_settings(cldice_weight, cldice_iterations)
        if len(size_divisibility) != spatial_dims:
            raise ValueError(f"size_divisibility {tuple(size_divisibility)} needs one entry per "
                             f"spatial axis ({spatial_dims}).")
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"MODEL.PIXEL_MEAN {list(pixel_mean)} and PIXEL_STD "
                             f"{list(pixel_std)} need one entry per input channel each.")
        if freeze_encoder and not isinstance(getattr(unet, "encoder", None), nn.Module):
            raise ValueError("MODEL.SEGMENTOR.FREEZE_ENCODER needs a network with an `encoder` "
                             f"(smp_unet); {type(unet).__name__} has none.")
        if spatial_dims == 3:
            _check_sliding_window(roi_size, size_divisibility, sw_overlap, sw_batch_size, sw_mode)
        self.unet = unet
        self.spatial_dims = spatial_dims
        self.num_classes = num_classes
        self.size_divisibility = tuple(size_divisibility)
        self.activation = activation
        self.ignore_value = ignore_value
        self.loss_args = {"activation": activation, "ignore_value": ignore_value,
                          "ce_weight": ce_weight, "dice_weight": dice_weight,
                          "include_background": dice_include_background,
                          "squared_pred": dice_squared_pred, "cldice_weight": cldice_weight,
                          "cldice_iterations": cldice_iterations}
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.unet.encoder.requires_grad_(False)
        self.sliding_window = {"roi_size": tuple(roi_size), "sw_batch_size": sw_batch_size,
                               "overlap": sw_overlap, "mode": sw_mode,
                               "sigma_scale": sw_sigma_scale}
        shape = (-1,) + (1,) * spatial_dims
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(shape), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(shape), False)

    @classmethod
    def from_config(cls, cfg):
        node = cfg.MODEL.SEGMENTOR
        _check_input_channels(cfg)
        network = build_segmentation_network(cfg)
        window = node.SLIDING_WINDOW
        return {
            "unet": network.module,
            "spatial_dims": node.SPATIAL_DIMS,
            "num_classes": node.NUM_CLASSES,
            "size_divisibility": network.size_divisibility,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "activation": node.ACTIVATION,
            "ignore_value": node.IGNORE_VALUE,
            "ce_weight": node.CE_WEIGHT,
            "dice_weight": node.DICE_WEIGHT,
            "dice_include_background": node.DICE_INCLUDE_BACKGROUND,
            "dice_squared_pred": node.DICE_SQUARED_PRED,
            "cldice_weight": node.CLDICE_WEIGHT,
            "cldice_iterations": node.CLDICE_ITERATIONS,
            "freeze_encoder": node.FREEZE_ENCODER,
            "roi_size": window.ROI_SIZE,
            "sw_overlap": window.OVERLAP,
            "sw_batch_size": window.BATCH_SIZE,
            "sw_mode": window.MODE,
            "sw_sigma_scale": window.SIGMA_SCALE,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but a frozen encoder stays in eval mode (fixed BN statistics)."""
        super().train(mode)
        if self.freeze_encoder:
            self.unet.encoder.eval()
        return self

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: mapper outputs: ``image`` [C, *spatial]; in training ``sem_seg``
                [*spatial] int64; 2D optionally ``height``/``width``, the output resolution.
        Returns:
            Training: ``{"loss_ce", "loss_dice"}`` (and ``"loss_cldice"`` when its weight is
            > 0) scalars (with deep supervision, the heads' losses weighted 1, 1/2, 1/4, ...
            and summed). Inference: one dict per input with
            ``sem_seg`` [K + 1, *spatial] probabilities (see the module docstring).
        """
        images = [(x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std
                  for x in batched_inputs]
        if self.spatial_dims == 3 and not self.training:
            return [{"sem_seg": self._probabilities(self._sliding_window(image))}
                    for image in images]
        batch, sizes = pad_batch(images, self.size_divisibility, 0.0)
        logits = self.unet(batch)  # [N, C', *padded]
        if self.training:
            targets = [x["sem_seg"].to(self.device) for x in batched_inputs]
            targets, _ = pad_batch(targets, self.size_divisibility, self.ignore_value)
            return self.losses(logits, targets.long())
        results = []
        for logit, x, size in zip(logits, batched_inputs, sizes):
            height, width = x.get("height", size[0]), x.get("width", size[1])
            logit = sem_seg_postprocess(logit, size, height, width)
            results.append({"sem_seg": self._probabilities(logit)})
        return results

    def losses(self, logits: Tensor, targets: Tensor) -> Dict[str, Tensor]:
        """CE + soft Dice (+ soft clDice) of [N, C', *spatial] logits, or of every head of deeply supervised
        [N, heads, C', *spatial] logits weighted max(2^-i, 1/16) (MONAI DeepSupervisionLoss "exp").

        Args:
            logits: network output in training.
            targets: [N, *spatial] int64 labels.
        """
        heads = logits.unbind(1) if logits.dim() == targets.dim() + 2 else (logits,)
        losses: Dict[str, Tensor] = {}
        for level, head in enumerate(heads):
            weight = max(0.5 ** level, 0.0625)
            for name, value in dice_ce_loss(head, targets, **self.loss_args).items():
                losses[name] = losses.get(name, 0.0) + weight * value
        return losses

    def _sliding_window(self, image: Tensor) -> Tensor:
        """[C, *spatial] normalised volume -> [C', *spatial] blended window logits."""
        from monai.inferers import sliding_window_inference

        return sliding_window_inference(image[None], predictor=self.unet,
                                        **self.sliding_window)[0]

    def _probabilities(self, logits: Tensor) -> Tensor:
        """[C', *spatial] logits -> [K + 1, *spatial] class probabilities."""
        if self.activation == "softmax":
            return logits.softmax(0)
        foreground = logits.sigmoid()
        return torch.cat([1.0 - foreground, foreground])


def _check_input_channels(cfg) -> None:
    """2D images have INPUT.FORMAT's channels; every input has one PIXEL_MEAN entry per channel."""
    node = cfg.MODEL.SEGMENTOR
    if node.SPATIAL_DIMS == 2:
        channels = 1 if cfg.INPUT.FORMAT == "L" else 3
        if channels != node.IN_CHANNELS:
            raise ValueError(f"INPUT.FORMAT '{cfg.INPUT.FORMAT}' gives {channels}-channel images "
                             f"but MODEL.SEGMENTOR.IN_CHANNELS is {node.IN_CHANNELS}: set one to "
                             "match (\"RGB\" for 3 channels, \"L\" for 1).")
    if len(cfg.MODEL.PIXEL_MEAN) != node.IN_CHANNELS:
        raise ValueError(f"MODEL.PIXEL_MEAN {list(cfg.MODEL.PIXEL_MEAN)} needs one entry per "
                         f"input channel (MODEL.SEGMENTOR.IN_CHANNELS {node.IN_CHANNELS}); set "
                         "PIXEL_MEAN and PIXEL_STD to match ([0.0] / [1.0] for scaled volumes).")


def _check_sliding_window(roi_size: Sequence[int], size_divisibility: Sequence[int],
                          overlap: float, batch_size: int, mode: str) -> None:
    key = "MODEL.SEGMENTOR.SLIDING_WINDOW"
    if len(roi_size) != 3 or any(side <= 0 or side % step
                                 for side, step in zip(roi_size, size_divisibility)):
        raise ValueError(f"{key}.ROI_SIZE {list(roi_size)} needs 3 positive sides, multiples of "
                         f"the network's size divisibility {tuple(size_divisibility)}.")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"{key}.OVERLAP must be in [0, 1), got {overlap}.")
    if batch_size < 1:
        raise ValueError(f"{key}.BATCH_SIZE must be >= 1, got {batch_size}.")
    if mode not in _BLEND_MODES:
        raise ValueError(f"{key}.MODE '{mode}' is not one of {_BLEND_MODES}.")
