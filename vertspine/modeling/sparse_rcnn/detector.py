"""Sparse R-CNN (Sun et al., CVPR 2021): a detector with N learned proposals and no anchors,
RPN or NMS, registered as ``MODEL.META_ARCHITECTURE "SparseRCNN"``.

The proposals are N learned boxes (normalised cx, cy, w, h; all start as the whole image) and N
learned features; :class:`DynamicHead` refines them in stages over the backbone's p2-p5, and
:class:`SetCriterion` supervises them by one-to-one matching. Inference keeps the top N of the
N x K sigmoid scores, optionally thresholded and passed through class-wise NMS.
"""
from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import batched_nms
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone, detector_postprocess
from detectron2.structures import Boxes, ImageList, Instances
from torch import Tensor, nn
from torchvision.ops import box_convert

from .head import DynamicHead
from .loss import SetCriterion

__all__ = ["SparseRCNN"]


@META_ARCH_REGISTRY.register()
class SparseRCNN(nn.Module):
    """Backbone, learned proposals, dynamic head and set criterion.

    Parameter names are those of the official implementation (``init_proposal_features.weight``,
    ``init_proposal_boxes.weight``, ``head.head_series.{i}.*``, ``backbone.*``), so its
    checkpoints load as they are (see :func:`load_sparse_rcnn_checkpoint`).
    """

    @configurable
    def __init__(self, *, backbone: Backbone, head: DynamicHead, criterion: SetCriterion,
                 num_classes: int, num_proposals: int, hidden_dim: int,
                 pixel_mean: Sequence[float], pixel_std: Sequence[float], use_focal: bool = True,
                 score_thresh: float = 0.0, nms_thresh: float = 0.0):
        """
        Args:
            backbone: outputs the features the head pools (e.g. a ResNet-FPN's p2..p5).
            head: the dynamic head.
            criterion: the training losses.
            num_classes: K foreground classes.
            num_proposals: N learned proposals, also the number of detections kept per image.
            hidden_dim: C, width of the proposal features.
            pixel_mean, pixel_std: per-channel input normalisation, in the input's channel order.
            use_focal: sigmoid scores over K classes (True) or softmax over K+1 (False).
            score_thresh: detections scoring below this are dropped at inference (0 keeps all).
            nms_thresh: IoU of the class-wise NMS at inference (0 = no NMS).
        """
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.criterion = criterion
        self.num_classes = num_classes
        self.num_proposals = num_proposals
        self.use_focal = use_focal
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.init_proposal_features = nn.Embedding(num_proposals, hidden_dim)
        self.init_proposal_boxes = nn.Embedding(num_proposals, 4)
        nn.init.constant_(self.init_proposal_boxes.weight[:, :2], 0.5)
        nn.init.constant_(self.init_proposal_boxes.weight[:, 2:], 1.0)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        node = cfg.MODEL.SPARSE_RCNN
        return {
            "backbone": backbone,
            "head": DynamicHead(cfg, backbone.output_shape()),
            "criterion": SetCriterion(cfg),
            "num_classes": node.NUM_CLASSES,
            "num_proposals": node.NUM_PROPOSALS,
            "hidden_dim": node.HIDDEN_DIM,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "use_focal": node.USE_FOCAL,
            "score_thresh": node.SCORE_THRESH_TEST,
            "nms_thresh": node.NMS_THRESH,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """Normalise the images and pad them to ``backbone.size_divisibility``."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std
                  for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def forward(self, batched_inputs: List[Dict]):
        """
        Args:
            batched_inputs: detectron2 dataset-mapper outputs: ``image`` [C, H, W] in
                ``INPUT.FORMAT``; in training ``instances`` with ``gt_boxes`` (XYXY absolute
                pixels of that image) and ``gt_classes``; optionally ``height``/``width``, the
                resolution the detections are rescaled to.
        Returns:
            Training: the weighted losses (see :class:`SetCriterion`). Inference: one dict per
            image with ``instances`` (``pred_boxes`` XYXY absolute pixels of the output
            resolution, ``scores``, ``pred_classes``).
        """
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        whwh = torch.tensor([[w, h, w, h] for h, w in images.image_sizes],
                            dtype=torch.float32, device=self.device)
        proposals = box_convert(self.init_proposal_boxes.weight, "cxcywh", "xyxy")
        boxes = proposals[None] * whwh[:, None, :]  # [B, N, 4] XYXY absolute, unpadded image
        logits, pred_boxes = self.head(features, boxes, self.init_proposal_features.weight)

        if self.training:
            targets = [x["instances"].to(self.device) for x in batched_inputs]
            return self.criterion(logits, pred_boxes, targets)

        results = self.inference(logits[-1], pred_boxes[-1], images.image_sizes)
        return [
            {"instances": detector_postprocess(result, x.get("height", size[0]),
                                               x.get("width", size[1]))}
            for result, x, size in zip(results, batched_inputs, images.image_sizes)
        ]

    def inference(self, logits: Tensor, boxes: Tensor,
                  image_sizes: List[tuple]) -> List[Instances]:
        """Detections of the last stage.

        Args:
            logits: [B, N, K] (K+1 when not focal) class logits.
            boxes: [B, N, 4] XYXY absolute pixels of each unpadded input image.
            image_sizes: B (height, width) of the unpadded input images.
        Returns:
            B ``Instances`` of at most N detections each, by decreasing score, in the frame of
            ``boxes``.
        """
        results = []
        for image_logits, image_boxes, size in zip(logits, boxes, image_sizes):
            if self.use_focal:
                scores, index = image_logits.sigmoid().flatten().topk(self.num_proposals)
                classes = index % self.num_classes
                image_boxes = image_boxes[torch.div(index, self.num_classes, rounding_mode="floor")]
            else:
                scores, classes = image_logits.softmax(-1)[:, :-1].max(-1)
            keep = self._filter(image_boxes, scores, classes)
            result = Instances(size)
            result.pred_boxes = Boxes(image_boxes[keep])
            result.scores = scores[keep]
            result.pred_classes = classes[keep]
            results.append(result)
        return results

    def _filter(self, boxes: Tensor, scores: Tensor, classes: Tensor) -> Tensor:
        """Indices kept by the score threshold and the class-wise NMS, by decreasing score."""
        keep = torch.nonzero(scores >= self.score_thresh).flatten()
        if self.nms_thresh > 0:
            kept = batched_nms(boxes[keep], scores[keep], classes[keep], self.nms_thresh)
            return keep[kept]
        return keep[scores[keep].argsort(descending=True)]
