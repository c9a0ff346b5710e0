"""Global pooling of a feature map over each image's valid cells, and the FC classification head.

Images of a batch are padded to a common size (:class:`detectron2.structures.ImageList`), so a
plain global average would mix padding into small images' features. :func:`masked_global_pool`
pools only the cells that cover the unpadded image: ``ceil(h / stride) x ceil(w / stride)``.
(Cells next to the padding still see it through their receptive field, so a padded image's
logits differ slightly from those of the same image alone; ``INPUT.SQUARE_SIZE`` or batches of
one size avoid that.)
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = ["ClassificationHead", "masked_global_pool"]

_POOLS = ("avg", "max")


def masked_global_pool(features: Tensor, image_sizes: Sequence[Tuple[int, int]], stride: int,
                       mode: str = "avg") -> Tensor:
    """Pool each image's feature map over the cells of its unpadded area.

    Args:
        features: [B, C, Hf, Wf] backbone features of the padded batch.
        image_sizes: B (height, width) of the unpadded images, in input pixels.
        stride: input pixels per feature cell.
        mode: "avg" or "max".
    Returns:
        [B, C] pooled features.
    """
    if mode not in _POOLS:
        raise ValueError(f"MODEL.IMAGE_CLASSIFIER.POOL is {mode!r}; use one of {_POOLS}.")
    batch, _, height, width = features.shape
    rows = torch.arange(height, device=features.device)
    cols = torch.arange(width, device=features.device)
    valid = torch.stack([
        (rows[:, None] < -(-h // stride)) & (cols[None, :] < -(-w // stride))
        for h, w in image_sizes
    ])[:, None]  # [B, 1, Hf, Wf]
    if mode == "avg":
        return (features * valid).sum((2, 3)) / valid.sum((2, 3)).clamp(min=1)
    return features.masked_fill(~valid, float("-inf")).amax((2, 3))


class ClassificationHead(nn.Module):
    """FC layers on pooled features: ``[Dropout, Linear, ReLU] x len(hidden_dims)``, then
    ``[Dropout, Linear]`` to the logits. ``hidden_dims=[]`` is one FC layer (LVM-Med's "1-fcn");
    ``[512, 256]`` gives LVM-Med's "fcns" head 2048 -> 512 -> 256 -> C on a ResNet-50.
    """

    def __init__(self, in_channels: int, num_logits: int, hidden_dims: Sequence[int] = (),
                 dropout: float = 0.0):
        """
        Args:
            in_channels: C_in, channels of the pooled feature.
            num_logits: outputs (1 for a binary classifier, else the class count).
            hidden_dims: widths of the hidden layers.
            dropout: dropout probability before every Linear (0 = none).
        """
        super().__init__()
        if num_logits < 1:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.NUM_CLASSES is {num_logits}; use 1 for a "
                             "binary classifier or the number of classes (>= 2).")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.DROPOUT is {dropout}; use 0 <= p < 1.")
        if any(int(d) < 1 for d in hidden_dims):
            raise ValueError(f"MODEL.IMAGE_CLASSIFIER.HIDDEN_DIMS {list(hidden_dims)} must be "
                             "positive widths.")
        layers: List[nn.Module] = []
        width = in_channels
        for hidden in hidden_dims:
            layers += [nn.Dropout(dropout), nn.Linear(width, int(hidden)), nn.ReLU(inplace=True)]
            width = int(hidden)
        layers += [nn.Dropout(dropout), nn.Linear(width, num_logits)]
        self.layers = nn.Sequential(*[m for m in layers if not _is_noop_dropout(m)])

    def forward(self, pooled: Tensor) -> Tensor:
        """[B, C_in] pooled features -> [B, num_logits] logits."""
        return self.layers(pooled)


def _is_noop_dropout(module: nn.Module) -> bool:
    return isinstance(module, nn.Dropout) and module.p == 0.0
