"""PromptSegmentor end to end on the tiny TinyViT of the instant config (32 px, 8 x 8 embedding):
training with several images and box counts in one batch, the frames of the inference output,
zero boxes, the frozen prompt encoder, bad inputs."""
import pytest
import torch

from prompt_seg_test_utils import tiny_model

S = 32


def _record(boxes, seed=0, **extra):
    """An input with a bright rectangle per box; gt_masks are those rectangles (S x S frame)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, S, S, generator=g) * 0.2
    masks = torch.zeros(len(boxes), S, S, dtype=torch.uint8)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        masks[i, y0:y1, x0:x1] = 1
        image[:, y0:y1, x0:x1] += 0.8
    return {"image": image, "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "gt_masks": masks, "file_name": f"case{seed}.npz", **extra}


def test_training_step_on_two_images_with_different_box_counts():
    model = tiny_model().train()
    batch = [_record([(2, 2, 12, 10), (14, 16, 30, 30), (4, 20, 10, 28)], seed=1),
             _record([(8, 4, 24, 18)], seed=2)]
    losses = model(batch)
    assert set(losses) == {"loss_dice", "loss_bce", "loss_iou"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    # every box counts: the loss differs from the loss of either image alone
    alone = [sum(model([record]).values()).item() for record in batch]
    assert min(abs(sum(losses.values()).item() - a) for a in alone) > 1e-4


def test_loss_decreases_on_one_sample():
    model = tiny_model(seed=1).train()
    sample = [_record([(2, 2, 12, 10), (14, 16, 30, 30)], seed=3)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    totals = []
    for _ in range(8):
        loss = sum(model(sample).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        totals.append(loss.item())
    assert totals[-1] < 0.7 * totals[0], totals


def test_masks_land_in_the_original_frame(monkeypatch):
    """A non-square 60 x 100 image (resized 19 x 32, padded to 32 x 32): logits that are
    positive exactly inside each box (in the decoder's frame) give masks inside the box scaled
    back to the original pixels, also for a box in the bottom-right corner."""
    model = tiny_model().eval()
    model.box_chunk = 1  # boxes decoded one at a time, then reassembled per image

    def box_logits(embeddings, boxes, image_index, mask_prompts=None, has_mask_prompt=None):
        ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
        inside = [(xs > b[0]) & (xs < b[2]) & (ys > b[1]) & (ys < b[3]) for b in boxes]
        logits = torch.stack(inside).float() * 20 - 10 if inside else torch.zeros(0, S, S)
        return logits, torch.full((len(boxes),), 0.5)

    monkeypatch.setattr(model, "decode", box_logits)
    scale = S / 100  # longest side 100 -> 32
    original = [(60.0, 30.0, 100.0, 60.0), (0.0, 0.0, 25.0, 50.0)]  # bottom-right, top-left
    boxes = [[v * scale for v in box] for box in original]
    record = {"image": torch.zeros(3, S, S), "boxes": torch.tensor(boxes), "height": 60,
              "width": 100, "resized_size": (19, 32)}
    other = {"image": torch.zeros(3, S, S), "boxes": torch.tensor([[0.0, 0.0, 32.0, 32.0]]),
             "height": 32, "width": 32}
    out, second = model([record, other])
    masks = out["prompt_seg"]["masks"]
    assert masks.shape == (2, 60, 100) and masks.dtype == torch.bool
    assert out["prompt_seg"]["mask_logits"].shape == (2, 60, 100)
    assert out["prompt_seg"]["iou_predictions"].tolist() == [0.5, 0.5]
    for mask, (x0, y0, x1, y1) in zip(masks, original):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        # the box edges, up to the 100/32 px of one decoder pixel
        assert abs(xs.min() - x0) <= 3.2 and abs(xs.max() + 1 - x1) <= 3.2
        assert abs(ys.min() - y0) <= 3.2 and abs(ys.max() + 1 - y1) <= 3.2
    assert masks[0, 59, 99] and not masks[0, 0, 0] and masks[1, 0, 0] and not masks[1, 59, 99]
    assert second["prompt_seg"]["masks"].shape == (1, 32, 32)
    assert second["prompt_seg"]["masks"].all()  # resized_size from height/width: 32 x 32


def test_zero_boxes():
    model = tiny_model().train()
    empty = _record([], seed=4)
    losses = model([empty, _record([(2, 2, 12, 10)], seed=5)])
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    losses = model([empty])
    assert all(v.item() == 0.0 and v.requires_grad for v in losses.values())
    sum(losses.values()).backward()  # attached to the graph: a zero step, no error
    model.eval()
    out = model([{**empty, "height": 50, "width": 40}])[0]["prompt_seg"]
    assert out["masks"].shape == (0, 50, 40) and out["iou_predictions"].shape == (0,)


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_prompt_encoder_gets_no_gradient(freeze):
    model = tiny_model("MODEL.PROMPT_SEG.FREEZE_PROMPT_ENCODER", str(freeze)).train()
    sum(model([_record([(2, 2, 12, 10), (14, 16, 30, 30)], seed=6)]).values()).backward()
    prompt = dict(model.prompt_encoder.named_parameters())
    box_corners = prompt["point_embeddings.2.weight"]
    assert (box_corners.grad is None) == freeze
    assert not box_corners.grad.eq(0).all() if not freeze else not box_corners.requires_grad
    # parts box prompts never use are frozen either way (no unused trainable parameter)
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    assert all(p.grad is not None for p in model.image_encoder.parameters())


@pytest.mark.parametrize("change, message", [
    ({"image": torch.zeros(3, 30, 32)}, r"case7.npz: image is \[3, 30, 32\]"),
    ({"boxes": torch.zeros(2, 3)}, r"case7.npz: boxes are \[2, 3\]"),
    ({"gt_masks": torch.zeros(1, 32, 32)}, r"case7.npz: gt_masks are \[1, 32, 32\], expected \[2,"),
])
def test_bad_inputs_name_the_file(change, message):
    model = tiny_model().train()
    with pytest.raises(ValueError, match=message):
        model([{**_record([(2, 2, 12, 10), (14, 16, 30, 30)], seed=7), **change}])


def test_mask_prompts_train_the_mask_downscaling_and_change_the_output():
    model = tiny_model("MODEL.PROMPT_SEG.MASK_PROMPT", "True").train()
    boxes = [(2, 2, 12, 10), (14, 16, 30, 30)]
    plain = _record(boxes, seed=8)
    prompted = {**plain, "mask_prompts": plain["gt_masks"].clone(),
                "has_mask_prompt": torch.tensor([True, False])}
    # an input without mask prompts still reaches every trainable parameter (DDP-safe)
    sum(model([plain]).values()).backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    model.eval()
    with torch.no_grad():
        without, with_ = (model([r])[0]["prompt_seg"]["mask_logits"] for r in (plain, prompted))
    assert not torch.allclose(without[0], with_[0])  # box 0 has a prompt
    torch.testing.assert_close(without[1], with_[1])  # box 1 is flagged without one


def test_mask_prompts_need_a_model_built_for_them():
    record = _record([(2, 2, 12, 10)], seed=9)
    with pytest.raises(ValueError, match="MODEL.PROMPT_SEG.MASK_PROMPT"):
        tiny_model().train()([{**record, "mask_prompts": record["gt_masks"],
                               "has_mask_prompt": torch.tensor([True])}])
    with pytest.raises(ValueError, match=r"case9.npz: mask_prompts \[1, 16, 16\]"):
        tiny_model("MODEL.PROMPT_SEG.MASK_PROMPT", "True").train()(
            [{**record, "mask_prompts": torch.zeros(1, 16, 16),
              "has_mask_prompt": torch.tensor([True])}])
