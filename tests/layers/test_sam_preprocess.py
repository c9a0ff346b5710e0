"""SAM preprocessing equals segment_anything's ResizeLongestSide + Sam.preprocess at any target
size, and boxes land in the same frame as ResizeLongestSide.apply_boxes_torch puts them."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

from vertspine.layers.sam import (
    SamSize,
    build_sam,
    preprocess_images,
    resized_shape,
    transform_boxes,
)

TINY = SamSize(encoder_dim=32, encoder_depth=1, encoder_heads=2, prompt_dim=32,
               decoder_depth=1, decoder_mlp_dim=32, decoder_heads=2)


@pytest.mark.parametrize("target", [64, 256, 1024])
def test_resized_shape_is_resize_longest_side(target):
    for height, width in [(200, 90), (90, 200), (333, 333), (511, 1023), (7, 5), (1024, 1)]:
        assert resized_shape(height, width, target) == \
            ResizeLongestSide.get_preprocess_shape(height, width, target)


@pytest.mark.parametrize("target", [64, 96])
def test_batch_and_boxes_equal_segment_anything(target):
    sam = build_sam(TINY, target, seed=0)
    transform = ResizeLongestSide(target)
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 200, 90), dtype=torch.uint8),
              torch.randint(0, 256, (3, 37, 120), dtype=torch.uint8),
              torch.randint(0, 256, (3, target, target), dtype=torch.uint8)]
    boxes = torch.tensor([[4.0, 10.0, 80.0, 36.0], [0.0, 0.0, 89.5, 36.5]])
    batch, factors = preprocess_images(images, target, sam.pixel_mean, sam.pixel_std)
    assert batch.shape == (3, 3, target, target) and batch.dtype == torch.float32
    for i, image in enumerate(images):
        size = tuple(image.shape[-2:])
        # ResizeLongestSide's shape, torch's antialiased bilinear resize, then Sam.preprocess.
        # (segment_anything 1.0's apply_image_torch reads that shape from dims 0, 1: B and C.)
        resized = F.interpolate(image[None].float(), transform.get_preprocess_shape(*size, target),
                                mode="bilinear", align_corners=False, antialias=True)
        torch.testing.assert_close(batch[i], sam.preprocess(resized)[0], rtol=0, atol=0)
        # SamPredictor.set_image's path (PIL resize to uint8): within one grey level
        pil = np.ascontiguousarray(transform.apply_image(image.permute(1, 2, 0).numpy()))
        predictor = sam.preprocess(torch.from_numpy(pil).permute(2, 0, 1)[None].float())[0]
        torch.testing.assert_close(batch[i], predictor, rtol=0, atol=1.0 / 57)
        reference = transform.apply_boxes_torch(boxes, size)
        torch.testing.assert_close(transform_boxes(boxes, size, target), reference)
        torch.testing.assert_close(boxes * factors[i], reference)
    assert resized_shape(200, 90, target)[0] == target  # the longest side fills the target
    assert batch[0, :, :, resized_shape(200, 90, target)[1]:].abs().sum() == 0  # padded right
