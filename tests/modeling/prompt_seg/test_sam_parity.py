"""Parity with segment_anything: a PromptSegmentor with a SAM ViT encoder, loaded from a ``Sam``'s
state dict, gives ``Sam.forward(multimask_output=False)``'s IoU predictions, logits and masks on
the same inputs, for several images with different box counts decoded in one batch."""
import torch

from prompt_seg_test_utils import TINY_SAM_SIZE, TINY_SAM_VIT, tiny_model
from vertspine.layers.sam import build_sam
from vertspine.modeling.prompt_seg import load_prompt_seg_checkpoint

# (original (H, W), resized (h, w) with the longest side at 32 px, boxes in the 32 px frame)
CASES = [((40, 64), (20, 32), [[1.5, 2.0, 14.0, 12.5], [16.0, 4.0, 31.0, 19.0],
                                [0.0, 0.0, 32.0, 20.0]]),
         ((48, 30), (32, 20), [[3.0, 10.0, 17.25, 30.0]])]


def test_masks_logits_and_iou_equal_segment_anything_sam():
    sam = build_sam(TINY_SAM_SIZE, 32, seed=1)
    for p in sam.parameters():  # move the zero-initialised relative positions and biases
        p.data.add_(torch.randn_like(p) * 0.02)
    model = tiny_model(*TINY_SAM_VIT).eval()
    assert load_prompt_seg_checkpoint(model, sam.state_dict()).complete

    torch.manual_seed(0)
    sam_inputs, our_inputs = [], []
    for original, resized, boxes in CASES:
        image = torch.rand(3, *resized) * 255  # already resized, as Sam.forward expects
        boxes = torch.tensor(boxes)
        sam_inputs.append({"image": image, "boxes": boxes, "original_size": original})
        our_inputs.append({"image": sam.preprocess(image), "boxes": boxes, "height": original[0],
                           "width": original[1], "resized_size": resized})
    with torch.no_grad():
        expected = sam(sam_inputs, multimask_output=False)
        ours = model(our_inputs)
    for (original, resized, _), theirs, out in zip(CASES, expected, ours):
        out = out["prompt_seg"]
        logits = sam.postprocess_masks(theirs["low_res_logits"], resized, original)[:, 0]
        assert out["mask_logits"].shape == logits.shape == (len(theirs["masks"]), *original)
        torch.testing.assert_close(out["iou_predictions"], theirs["iou_predictions"][:, 0],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["mask_logits"], logits, atol=1e-4, rtol=1e-4)
        clear = logits.abs() > 1e-3  # pixels whose sign a 1e-4 difference cannot flip
        assert torch.equal(out["masks"][clear], theirs["masks"][:, 0][clear])
        assert 0 < out["masks"].float().mean() < 1  # the comparison is not all one class


def test_mask_prompts_equal_segment_anything_mask_inputs():
    """Boxes with a mask prompt give ``Sam.forward``'s output with that image's ``mask_inputs``,
    and boxes flagged without one in the same batch its output without ``mask_inputs``."""
    sam = build_sam(TINY_SAM_SIZE, 32, seed=2)
    for p in sam.parameters():
        p.data.add_(torch.randn_like(p) * 0.02)
    model = tiny_model(*TINY_SAM_VIT, "MODEL.PROMPT_SEG.MASK_PROMPT", "True").eval()
    assert load_prompt_seg_checkpoint(model, sam.state_dict()).complete

    torch.manual_seed(1)
    sam_inputs, our_inputs = [], []
    for (original, resized, boxes), with_masks in zip(CASES, (True, False)):
        image = torch.rand(3, *resized) * 255
        boxes = torch.tensor(boxes)
        masks = (torch.rand(len(boxes), 32, 32) > 0.6).float()  # 4E = S = 32: no resizing
        sam_input = {"image": image, "boxes": boxes, "original_size": original}
        if with_masks:
            sam_input["mask_inputs"] = masks[:, None]
        sam_inputs.append(sam_input)
        our_inputs.append({"image": sam.preprocess(image), "boxes": boxes, "height": original[0],
                           "width": original[1], "resized_size": resized, "mask_prompts": masks,
                           "has_mask_prompt": torch.full((len(boxes),), with_masks)})
    with torch.no_grad():
        expected = sam(sam_inputs, multimask_output=False)
        ours = model(our_inputs)
        unprompted = sam([{**sam_inputs[0], "mask_inputs": None}], multimask_output=False)[0]
    for (original, resized, _), theirs, out in zip(CASES, expected, ours):
        out = out["prompt_seg"]
        logits = sam.postprocess_masks(theirs["low_res_logits"], resized, original)[:, 0]
        torch.testing.assert_close(out["iou_predictions"], theirs["iou_predictions"][:, 0],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out["mask_logits"], logits, atol=1e-4, rtol=1e-4)
    # the mask prompt changes the first image's result (the comparison above is not vacuous)
    assert (unprompted["iou_predictions"] - expected[0]["iou_predictions"]).abs().max() > 1e-3
