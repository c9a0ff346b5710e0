"""Sparse R-CNN's dynamic head: a series of stages that refine N proposals per image.

Each stage (:class:`RCNNHead`) pools a 7x7 RoI feature per proposal box, lets the proposal
features attend to each other, mixes each proposal's feature into its RoI feature with a
:class:`DynamicConv`, then predicts class logits and a box refinement. Module and parameter names
are those of the official implementation, so its checkpoints load as they are
(``head.head_series.{i}.self_attn.in_proj_weight``, ``...inst_interact.dynamic_layer.weight``...).
Boxes are XYXY absolute pixels of each unpadded input image throughout.
"""
import math
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.poolers import ROIPooler
from detectron2.structures import Boxes
from torch import Tensor, nn

__all__ = ["DynamicConv", "DynamicHead", "RCNNHead"]

# Upper bound of the log-scale box deltas dw, dh (upstream value; detectron2's is log(1000/16)).
DEFAULT_SCALE_CLAMP = math.log(100000.0 / 16)
_ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


def _branch(dim: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` x [Linear without bias, LayerNorm, ReLU]: keys ``{3i}.weight``,
    ``{3i+1}.weight``, ``{3i+1}.bias`` as upstream's ``cls_module`` / ``reg_module``."""
    layers: List[nn.Module] = []
    for _ in range(num_blocks):
        layers += [nn.Linear(dim, dim, bias=False), nn.LayerNorm(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DynamicConv(nn.Module):
    """Instance interaction: two per-proposal linear maps, generated from the proposal feature,
    applied to the proposal's RoI feature (C -> D -> C), then flattened and projected to C."""

    def __init__(self, *, hidden_dim: int = 256, dim_dynamic: int = 64, num_dynamic: int = 2,
                 pooler_resolution: int = 7):
        """
        Args:
            hidden_dim: C, width of proposal and RoI features.
            dim_dynamic: D, inner width of the dynamic maps.
            num_dynamic: number of dynamic maps; upstream's layer is defined for 2 only.
            pooler_resolution: side S of the pooled RoI feature.
        """
        super().__init__()
        if num_dynamic != 2:
            raise ValueError(f"MODEL.SPARSE_RCNN.NUM_DYNAMIC is {num_dynamic}; DynamicConv "
                             "generates exactly 2 maps (C->D and D->C), as upstream. Set it to 2.")
        self.hidden_dim = hidden_dim
        self.dim_dynamic = dim_dynamic
        self.dynamic_layer = nn.Linear(hidden_dim, num_dynamic * hidden_dim * dim_dynamic)
        self.norm1 = nn.LayerNorm(dim_dynamic)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.out_layer = nn.Linear(hidden_dim * pooler_resolution ** 2, hidden_dim)
        self.norm3 = nn.LayerNorm(hidden_dim)

    def forward(self, pro_features: Tensor, roi_features: Tensor) -> Tensor:
        """
        Args:
            pro_features: [P, C] one feature per proposal (P = B * N).
            roi_features: [P, S*S, C] pooled features, spatial positions in row-major order.
        Returns:
            [P, C] interaction features.
        """
        params = self.dynamic_layer(pro_features)
        split = self.hidden_dim * self.dim_dynamic
        first = params[:, :split].view(-1, self.hidden_dim, self.dim_dynamic)
        second = params[:, split:].view(-1, self.dim_dynamic, self.hidden_dim)
        features = F.relu(self.norm1(torch.bmm(roi_features, first)))
        features = F.relu(self.norm2(torch.bmm(features, second)))
        return F.relu(self.norm3(self.out_layer(features.flatten(1))))


class RCNNHead(nn.Module):
    """One stage: RoI pooling, self-attention, DynamicConv, FFN, class and box predictors."""

    def __init__(self, *, num_classes: int, hidden_dim: int = 256, dim_feedforward: int = 2048,
                 nheads: int = 8, dropout: float = 0.0, activation: str = "relu",
                 num_cls: int = 1, num_reg: int = 3, dim_dynamic: int = 64, num_dynamic: int = 2,
                 pooler_resolution: int = 7, use_focal: bool = True, prior_prob: float = 0.01,
                 bbox_weights: Sequence[float] = (2.0, 2.0, 1.0, 1.0),
                 scale_clamp: float = DEFAULT_SCALE_CLAMP):
        """
        Args:
            num_classes: K; the predictor has K outputs (focal) or K+1 (softmax, last = none).
            hidden_dim, dim_feedforward, nheads, dropout, activation: the transformer layer
                (``activation`` "relu" or "gelu").
            num_cls, num_reg: [Linear, LayerNorm, ReLU] blocks of the class / box branches.
            dim_dynamic, num_dynamic, pooler_resolution: see :class:`DynamicConv`.
            use_focal, prior_prob: with focal loss, the class bias starts at the logit of
                ``prior_prob``.
            bbox_weights, scale_clamp: box decoding (dx, dy, dw, dh weights; max dw, dh).
        """
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"MODEL.SPARSE_RCNN.ACTIVATION is {activation!r}; "
                             f"use one of {sorted(_ACTIVATIONS)}.")
        self.hidden_dim = hidden_dim
        self.self_attn = nn.MultiheadAttention(hidden_dim, nheads, dropout=dropout,
                                               batch_first=True)
        self.inst_interact = DynamicConv(hidden_dim=hidden_dim, dim_dynamic=dim_dynamic,
                                         num_dynamic=num_dynamic,
                                         pooler_resolution=pooler_resolution)
        self.linear1 = nn.Linear(hidden_dim, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, hidden_dim)
        self.norm1 = nn.LayerNorm(hidden_dim)
        self.norm2 = nn.LayerNorm(hidden_dim)
        self.norm3 = nn.LayerNorm(hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.activation = _ACTIVATIONS[activation]
        self.cls_module = _branch(hidden_dim, num_cls)
        self.reg_module = _branch(hidden_dim, num_reg)
        self.class_logits = nn.Linear(hidden_dim, num_classes if use_focal else num_classes + 1)
        self.bboxes_delta = nn.Linear(hidden_dim, 4)
        self.box_transform = Box2BoxTransform(weights=tuple(bbox_weights), scale_clamp=scale_clamp)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if use_focal:  # only the class bias: upstream resets every tensor whose last dim is K
            nn.init.constant_(self.class_logits.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, features: List[Tensor], boxes: Tensor, pro_features: Tensor,
                pooler: ROIPooler) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            features: the pooled feature maps, each [B, C, Hi, Wi].
            boxes: [B, N, 4] current boxes, XYXY absolute pixels.
            pro_features: [B, N, C] current proposal features.
            pooler: RoI pooler over ``features``.
        Returns:
            class logits [B, N, K] (K+1 softmax), refined boxes [B, N, 4] XYXY absolute pixels,
            proposal features [B, N, C] for the next stage.
        """
        batch, num_proposals = boxes.shape[:2]
        roi = pooler(features, [Boxes(image_boxes) for image_boxes in boxes])
        roi = roi.flatten(2).transpose(1, 2)  # [B*N, S*S, C]

        attended = self.self_attn(pro_features, pro_features, pro_features, need_weights=False)[0]
        pro = self.norm1(pro_features + self.dropout(attended)).reshape(-1, self.hidden_dim)
        pro = self.norm2(pro + self.dropout(self.inst_interact(pro, roi)))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(pro))))
        pro = self.norm3(pro + self.dropout(ffn))

        logits = self.class_logits(self.cls_module(pro))
        deltas = self.bboxes_delta(self.reg_module(pro))
        refined = self.box_transform.apply_deltas(deltas, boxes.reshape(-1, 4))
        return (logits.view(batch, num_proposals, -1), refined.view(batch, num_proposals, 4),
                pro.view(batch, num_proposals, self.hidden_dim))


class DynamicHead(nn.Module):
    """The stages in series; boxes are detached between stages, features carried over."""

    @configurable
    def __init__(self, *, in_features: List[str], pooler: ROIPooler, stages: List[RCNNHead]):
        """
        Args:
            in_features: names of the backbone features to pool, e.g. ["p2", "p3", "p4", "p5"].
            pooler: RoI pooler whose scales follow ``in_features``.
            stages: the stages, in order (parameters ``head_series.{i}.*``).
        """
        super().__init__()
        if not stages:
            raise ValueError("MODEL.SPARSE_RCNN.NUM_HEADS must be at least 1.")
        self.in_features = list(in_features)
        self.box_pooler = pooler
        self.head_series = nn.ModuleList(stages)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        node = cfg.MODEL.SPARSE_RCNN
        in_features = list(node.IN_FEATURES)
        unknown = [name for name in in_features if name not in input_shape]
        if unknown:
            raise ValueError(f"MODEL.SPARSE_RCNN.IN_FEATURES has {unknown}, which the backbone "
                             f"does not output (it outputs {sorted(input_shape)}).")
        channels = sorted({input_shape[name].channels for name in in_features})
        if channels != [node.HIDDEN_DIM]:
            raise ValueError(f"MODEL.SPARSE_RCNN.HIDDEN_DIM is {node.HIDDEN_DIM} but the features "
                             f"{in_features} have {channels} channels; they must be equal (set "
                             "HIDDEN_DIM to MODEL.FPN.OUT_CHANNELS).")
        pooler = ROIPooler(
            output_size=node.POOLER_RESOLUTION,
            scales=tuple(1.0 / input_shape[name].stride for name in in_features),
            sampling_ratio=node.POOLER_SAMPLING_RATIO,
            pooler_type=node.POOLER_TYPE,
        )
        stage_args = dict(
            num_classes=node.NUM_CLASSES, hidden_dim=node.HIDDEN_DIM,
            dim_feedforward=node.DIM_FEEDFORWARD, nheads=node.NHEADS, dropout=node.DROPOUT,
            activation=node.ACTIVATION, num_cls=node.NUM_CLS, num_reg=node.NUM_REG,
            dim_dynamic=node.DIM_DYNAMIC, num_dynamic=node.NUM_DYNAMIC,
            pooler_resolution=node.POOLER_RESOLUTION, use_focal=node.USE_FOCAL,
            prior_prob=node.PRIOR_PROB,
        )
        stages = [RCNNHead(**stage_args) for _ in range(node.NUM_HEADS)]
        return {"in_features": in_features, "pooler": pooler, "stages": stages}

    def forward(self, features: Dict[str, Tensor], boxes: Tensor,
                pro_features: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            features: backbone outputs by name, each [B, C, Hi, Wi].
            boxes: [B, N, 4] initial boxes, XYXY absolute pixels of each unpadded input image.
            pro_features: [N, C] initial proposal features, shared by the images.
        Returns:
            class logits [S, B, N, K] and boxes [S, B, N, 4] (XYXY absolute pixels) of the S
            stages; only the last stage's boxes are used at inference.
        """
        maps = [features[name] for name in self.in_features]
        pro = pro_features[None].expand(boxes.shape[0], -1, -1)
        all_logits, all_boxes = [], []
        for stage in self.head_series:
            logits, refined, pro = stage(maps, boxes, pro, self.box_pooler)
            all_logits.append(logits)
            all_boxes.append(refined)
            boxes = refined.detach()
        return torch.stack(all_logits), torch.stack(all_boxes)
