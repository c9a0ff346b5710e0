"""SAM box tokens equal segment_anything's own mask-decoder internals; one encoder run per image."""
import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from vertspine.modeling.vertfound.sam_encoder import SamBoxEncoder, build_vertfound_sam
from vertfound_test_utils import synthetic_input, tiny_cfg, tiny_model


def _tiny_sam():
    return build_vertfound_sam("tiny", seed=5, tiny=tiny_cfg().MODEL.VERTFOUND.SAM.TINY).eval()


def _hooked_tokens(sam, run):
    """hs[:, 1] of the two-way transformer while ``run()`` calls segment_anything."""
    captured = []
    handle = sam.mask_decoder.transformer.register_forward_hook(
        lambda module, args, out: captured.append(out[0][:, 1].detach().clone()))
    try:
        run()
    finally:
        handle.remove()
    return torch.cat(captured)


def test_token_equals_segment_anything_predictor_on_a_square_image():
    sam = _tiny_sam()
    size = sam.image_encoder.img_size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    boxes = torch.tensor([[5.0, 8.0, 60.0, 40.0], [20.0, 50.0, 100.0, 120.0], [0, 0, 127, 127]])
    predictor = SamPredictor(sam)
    with torch.no_grad():
        predictor.set_image(image)
        expected = _hooked_tokens(sam, lambda: predictor.predict_torch(
            None, None, boxes=predictor.transform.apply_boxes_torch(boxes, (size, size)),
            multimask_output=False))
        encoder = SamBoxEncoder(sam)
        ours = encoder([torch.from_numpy(image).permute(2, 0, 1)], [boxes])[0]
    assert ours.shape == (3, encoder.token_dim) == expected.shape
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_token_equals_mask_decoder_on_a_non_square_image():
    sam = _tiny_sam()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (200, 90, 3), dtype=np.uint8)
    boxes = torch.tensor([[4.0, 10.0, 80.0, 60.0], [10.0, 100.0, 85.0, 190.0]])
    predictor = SamPredictor(sam)
    encoder = SamBoxEncoder(sam, box_chunk=1)  # chunking must not change anything
    with torch.no_grad():
        predictor.set_image(image)
        prompts = predictor.transform.apply_boxes_torch(boxes, (200, 90))
        expected = _hooked_tokens(sam, lambda: predictor.predict_torch(
            None, None, boxes=prompts, multimask_output=False))
        ours = encoder.box_tokens(predictor.features, prompts, torch.zeros(2, dtype=torch.long))
        _, scales = encoder.preprocess([torch.from_numpy(image).permute(2, 0, 1)])
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(boxes * scales[0], prompts)
    assert predictor.input_size == encoder.input_size(200, 90)


def test_image_encoder_runs_once_per_image_at_inference():
    model = tiny_model().eval()
    calls = []
    model.sam.image_encoder.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    batch = [synthetic_input(7, seed=1), synthetic_input(25, seed=2, image_id=1)]
    with torch.no_grad():
        outputs = model(batch)
    assert calls == [2]  # one batched call: one encoding per image, for all 32 boxes
    assert [len(o["instances"]) for o in outputs] == [7, 25]


def test_unknown_model_type_and_missing_checkpoint_are_refused():
    with pytest.raises(ValueError, match="MODEL_TYPE"):
        build_vertfound_sam("vit_x")
    with pytest.raises(ValueError, match="does not exist"):
        build_vertfound_sam("vit_b", checkpoint="/nonexistent/sam.pth")


def test_roi_features_pool_the_box_and_its_context():
    sam = _tiny_sam()
    encoder = SamBoxEncoder(sam, roi_size=2, roi_context=2.0)
    grid = sam.prompt_encoder.image_embedding_size[0]
    assert encoder.feature_dim == encoder.token_dim + 2 * 32 * 4
    # An embedding equal to the x coordinate of each cell centre (in SAM input pixels).
    stride = encoder.image_size / grid
    x = (torch.arange(grid) + 0.5) * stride
    embeddings = x.view(1, 1, 1, grid).expand(1, 32, grid, grid).contiguous()
    boxes = torch.tensor([[32.0, 32.0, 64.0, 64.0]])
    rois = encoder.box_rois(embeddings, boxes, torch.zeros(1, dtype=torch.long))
    box_bins, context_bins = rois[0, :128].view(32, 2, 2), rois[0, 128:].view(32, 2, 2)
    # bin centres at x = 40, 56 (box) and 32, 64 (context box 16..80), linear interpolation
    torch.testing.assert_close(box_bins[0, 0], torch.tensor([40.0, 56.0]))
    torch.testing.assert_close(context_bins[0, 0], torch.tensor([32.0, 64.0]))


def test_shifted_rois_pool_the_neighbours_places_along_y():
    sam = _tiny_sam()
    encoder = SamBoxEncoder(sam, roi_size=2, roi_context=2.0, roi_shifts=(-1.0, 0.5))
    grid = sam.prompt_encoder.image_embedding_size[0]
    assert encoder.roi_dim == 4 * 32 * 4
    # An embedding equal to the y coordinate of each cell centre (in SAM input pixels).
    y = (torch.arange(grid) + 0.5) * (encoder.image_size / grid)
    embeddings = y.view(1, 1, grid, 1).expand(1, 32, grid, grid).contiguous()
    boxes = torch.tensor([[32.0, 64.0, 48.0, 96.0]])  # 32 px high
    rois = encoder.box_rois(embeddings, boxes, torch.zeros(1, dtype=torch.long)).view(4, 32, 2, 2)
    # bin rows at y = 72, 88 in the box; the box moved up 32 px (32..64): 40, 56; moved down
    # 16 px (80..112): 88, 104. Columns are equal (the embedding does not vary along x).
    torch.testing.assert_close(rois[0, 0, :, 0], torch.tensor([72.0, 88.0]))
    torch.testing.assert_close(rois[2, 0, :, 0], torch.tensor([40.0, 56.0]))
    torch.testing.assert_close(rois[3, 5, :, 1], torch.tensor([88.0, 104.0]))


def test_model_features_carry_roi_columns_when_enabled():
    model = tiny_model(tiny_cfg("MODEL.VERTFOUND.FUSION.SAM_ROI_SIZE", "2")).eval()
    assert model.fusion.roi_proj.in_features == model.sam_encoder.roi_dim == 256
    with torch.no_grad():
        features = model.sam_encoder([synthetic_input(3, seed=9)["image"]],
                                     [synthetic_input(3, seed=9)["instances"].gt_boxes.tensor])
        inst = model([synthetic_input(3, seed=9)])[0]["instances"]
    assert features[0].shape == (3, model.sam_encoder.feature_dim)
    assert len(inst) == 3
    model = tiny_model(tiny_cfg("MODEL.VERTFOUND.FUSION.SAM_ROI_SIZE", "2",
                                "MODEL.VERTFOUND.FUSION.SAM_ROI_SHIFTS", "[-1.0, 1.0]"))
    assert model.sam_encoder.roi_shifts == (-1.0, 1.0)
    assert model.fusion.roi_proj.in_features == 512
