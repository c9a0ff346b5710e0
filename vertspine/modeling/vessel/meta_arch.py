"""``VesselSegmentor``: the generic 3D ``Segmentor`` with one sigmoid logit, whose inference is
the vessel pipeline (:class:`~.inference.VesselInference`: test-time augmentation, resampling,
gaussian sliding window, threshold, small-component removal).

Training is the Segmentor's (patches from ``VolumeMapper``, Dice + CE). Inference input: the
test mapping of ``VolumeMapper``: ``image`` [1, X, Y, Z] scaled by ``INPUT.VOLUME.INTENSITY``
and ``spacing`` (mm per array axis). Output per volume: ``sem_seg`` float [2, X, Y, Z]
(background, vessel probabilities, so the Segmentor's evaluators work) and ``vessel_mask``
uint8 [X, Y, Z] (1 where the probability is >= ``MODEL.VESSEL.INFERENCE.THRESHOLD``, small
components removed), both on the input volume's grid.
"""
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY

from vertspine.modeling.segmentation import Segmentor

from .inference import VesselInference

__all__ = ["VesselSegmentor"]


@META_ARCH_REGISTRY.register()
class VesselSegmentor(Segmentor):
    """A 3D sigmoid ``Segmentor`` whose inference is :class:`VesselInference`."""

    @configurable
    def __init__(self, *, inference: VesselInference, **segmentor_args):
        """
        Args:
            inference: the inference pipeline.
            **segmentor_args: the :class:`Segmentor` arguments (``spatial_dims`` 3,
                ``activation`` "sigmoid", ``num_classes`` 1).
        Raises:
            ValueError: another dimensionality or head, naming the ``MODEL.SEGMENTOR`` key.
        """
        super().__init__(**segmentor_args)
        if self.spatial_dims != 3:
            raise ValueError("VesselSegmentor segments volumes: MODEL.SEGMENTOR.SPATIAL_DIMS "
                             f"must be 3, got {self.spatial_dims}.")
        if self.activation != "sigmoid" or self.num_classes != 1:
            raise ValueError("VesselSegmentor has one sigmoid vessel logit: set "
                             "MODEL.SEGMENTOR.ACTIVATION \"sigmoid\" and NUM_CLASSES 1 (got "
                             f"{self.activation!r}, {self.num_classes}).")
        self.inference = inference

    @classmethod
    def from_config(cls, cfg):
        return {**super().from_config(cfg), "inference": VesselInference(cfg)}

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: ``VolumeMapper`` outputs: ``image`` [1, X, Y, Z]; in training
                ``sem_seg`` [X, Y, Z]; at inference ``spacing`` (needed with a target spacing).
        Returns:
            Training: the Segmentor's losses. Inference: one dict per volume with ``sem_seg``
            [2, X, Y, Z] probabilities and ``vessel_mask`` uint8 [X, Y, Z] (module docstring).
        """
        if self.training:
            return super().forward(batched_inputs)
        results = []
        for x in batched_inputs:
            image = (x["image"].to(self.device).float() - self.pixel_mean) / self.pixel_std
            probability, mask = self.inference(self._sliding_window, image, x.get("spacing"))
            results.append({"sem_seg": torch.stack([1.0 - probability, probability]),
                            "vessel_mask": mask})
        return results
