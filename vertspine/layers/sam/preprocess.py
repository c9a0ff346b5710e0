"""SAM's input preprocessing for any target size, and boxes taken to the same frame.

As segment_anything's ``SamPredictor.set_torch_image`` with ``ResizeLongestSide``: the longest
side is resized to the target size S (bilinear, antialias, the shorter side rounded half up),
the image is normalised with the pixel mean and std, then zero-padded at the bottom and right
to S x S. Boxes are scaled per axis by the resize factors (``ResizeLongestSide.apply_boxes``);
the padding does not move them. S is 1024 for SAM and MedSAM, 256 for LiteMedSAM and DAFT.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SAM_PREPROCESSING", "preprocess_images", "resized_shape", "transform_boxes"]

# How images reach SAM, in words (recorded in VertFound's embedding caches; do not reword).
SAM_PREPROCESSING = (
    "RGB uint8 -> float; longest side resized to the SAM image size (bilinear, antialias, "
    "ResizeLongestSide rounding); (x - pixel_mean) / pixel_std; zero-padded bottom/right"
)


def resized_shape(height: int, width: int, target_size: int) -> Tuple[int, int]:
    """(h, w) of a (height, width) image whose longest side is resized to ``target_size``
    (``ResizeLongestSide.get_preprocess_shape``: each side scaled, then rounded half up)."""
    scale = target_size * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def _box_factors(height: int, width: int, target_size: int) -> List[float]:
    new_h, new_w = resized_shape(height, width, target_size)
    return [new_w / width, new_h / height] * 2


def transform_boxes(boxes: Tensor, original_size: Tuple[int, int], target_size: int) -> Tensor:
    """XYXY boxes [N, 4] in the pixels of an (H, W) image, in the preprocessed frame's pixels.

    Args:
        boxes: [N, 4] float XYXY, absolute pixels of the original image.
        original_size: (H, W) of the original image.
        target_size: S, the preprocessed side.
    Returns:
        [N, 4] XYXY in the S x S input's pixels (same dtype and device).
    """
    return boxes * boxes.new_tensor(_box_factors(original_size[0], original_size[1], target_size))


def preprocess_images(images: Sequence[Tensor], target_size: int, pixel_mean: Tensor,
                      pixel_std: Tensor) -> Tuple[Tensor, Tensor]:
    """Resize (longest side to S), normalise and zero-pad images to a batch [B, C, S, S].

    Args:
        images: B tensors [C, H, W] (RGB 0..255 for SAM's statistics), any dtype.
        target_size: S.
        pixel_mean, pixel_std: [C, 1, 1] float; the batch is put on their device.
    Returns:
        (batch [B, C, S, S] float32, [B, 4] factors (sx, sy, sx, sy) that take XYXY boxes from
        each image's pixels to the batch's pixels, as :func:`transform_boxes`).
    """
    device = pixel_mean.device
    batch, factors = [], []
    for image in images:
        height, width = image.shape[-2:]
        new_h, new_w = resized_shape(height, width, target_size)
        x = image.to(device=device, dtype=torch.float32)[None]
        if (new_h, new_w) != (height, width):
            x = F.interpolate(x, (new_h, new_w), mode="bilinear", align_corners=False,
                              antialias=True)
        x = (x[0] - pixel_mean) / pixel_std
        batch.append(F.pad(x, (0, target_size - new_w, 0, target_size - new_h)))
        factors.append(_box_factors(height, width, target_size))
    return torch.stack(batch), torch.tensor(factors, device=device)
