"""timm classification networks (DenseNet, ResNet, ...) as detectron2 backbones.

``MODEL.BACKBONE.NAME "build_timm_backbone"`` builds ``timm.create_model(MODEL.TIMM.NAME,
features_only=True)``. Its outputs are named ``stage{i+1}`` for timm ``feature_info`` index i
(channels and strides from ``feature_info``), plus ``final``: the deepest returned stage.

For DenseNet, timm's last feature is ``features.norm5``, a BatchNorm *with* ReLU
(``BatchNormAct2d``), so ``final`` is torchvision's ``relu(densenet.features(x))``: the input of
torchvision's classifier pooling. (The VinDr-SpineXR classifier pooled ``features`` without that
ReLU; see the spec's weak point 13.) Weights in torchvision layout convert with
:meth:`TimmBackbone.convert_torchvision_state_dict` (see :mod:`.checkpoint`). timm is imported
when a backbone is built, not when this module is.
"""
from typing import Dict, Mapping, Sequence, Tuple

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor

from vertspine.utils.checkpoint_report import CheckpointReport

from .checkpoint import convert_torchvision_to_timm

__all__ = ["TimmBackbone", "build_timm_backbone"]


class TimmBackbone(Backbone):
    """A timm ``features_only`` network with detectron2's Backbone interface.

    Parameters live under ``body.`` with timm's feature-extractor names (e.g.
    ``body.features_denseblock1.denselayer1.conv1.weight``, ``body.layer1.0.conv1.weight``).
    """

    def __init__(self, name: str, *, pretrained: bool = False, in_chans: int = 3,
                 out_indices: Sequence[int] = ()):
        """
        Args:
            name: a timm model name (``timm.list_models()``), e.g. "densenet121".
            pretrained: load timm's pretrained weights (needs the Hugging Face hub).
            in_chans: input channels.
            out_indices: feature_info indices to return ([] = all).
        """
        import timm  # here, so that importing vertspine does not import timm

        super().__init__()
        if name not in timm.list_models():
            raise ValueError(f"MODEL.TIMM.NAME {name!r} is not a timm model; see "
                             "timm.list_models(), e.g. 'densenet121', 'resnet50'.")
        kwargs = {"out_indices": tuple(out_indices)} if out_indices else {}
        self.body = timm.create_model(name, pretrained=pretrained, features_only=True,
                                      in_chans=in_chans, **kwargs)
        self.model_name = name
        info = self.body.feature_info
        self._stage_names = [f"stage{index + 1}" for index in info.out_indices]
        self._out_features = self._stage_names + ["final"]
        self._out_feature_channels = dict(zip(self._stage_names, info.channels()))
        self._out_feature_strides = dict(zip(self._stage_names, info.reduction()))
        self._out_feature_channels["final"] = info.channels()[-1]
        self._out_feature_strides["final"] = info.reduction()[-1]

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: [B, C_in, H, W] normalised images.
        Returns:
            ``stage{i}`` -> [B, C_i, ceil(H / s_i), ceil(W / s_i)] (approximately; timm's
            rounding), and ``final`` (the deepest stage, the same tensor).
        """
        features = dict(zip(self._stage_names, self.body(x)))
        features["final"] = features[self._stage_names[-1]]
        return features

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: ShapeSpec(channels=self._out_feature_channels[name],
                                stride=self._out_feature_strides[name])
                for name in self._out_features}

    def convert_torchvision_state_dict(
        self, state_dict: Mapping[str, Tensor]
    ) -> Tuple[Dict[str, Tensor], CheckpointReport]:
        """Rename a torchvision DenseNet/ResNet state dict to this backbone's keys (without the
        ``body.`` prefix's owner, i.e. keys start with ``body.``); see
        :func:`convert_torchvision_to_timm`."""
        converted, report = convert_torchvision_to_timm(state_dict, self.body.state_dict())
        return {f"body.{key}": value for key, value in converted.items()}, report


@BACKBONE_REGISTRY.register()
def build_timm_backbone(cfg, input_shape: ShapeSpec) -> TimmBackbone:
    """``MODEL.BACKBONE.NAME "build_timm_backbone"``: the timm network ``MODEL.TIMM.NAME``."""
    node = cfg.MODEL.TIMM
    return TimmBackbone(node.NAME, pretrained=node.PRETRAINED, in_chans=input_shape.channels,
                        out_indices=list(node.OUT_INDICES))
