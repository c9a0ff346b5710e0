"""The fusion module: a box's feature does not depend on other images' box counts."""
import pytest
import torch

from vertspine.modeling.vertfound.fusion import VertebraFusion


def _fusion(**kwargs):
    torch.manual_seed(0)
    fusion = VertebraFusion(sam_dim=12, clip_width=16, num_layers=2, text_dim=8, num_heads=4,
                            ffn_dim=32, dropout=0.1, **kwargs)
    return fusion.eval()


def _image(num_boxes, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(num_boxes, 12, generator=g), torch.randn(2, 5, 16, generator=g),
            torch.rand(num_boxes, 4, generator=g))


def _batch(images):
    count = max(len(t) for t, _, _ in images)
    tokens = torch.zeros(len(images), count, 12)
    boxes = torch.zeros(len(images), count, 4)
    valid = torch.zeros(len(images), count, dtype=torch.bool)
    for i, (t, _, b) in enumerate(images):
        tokens[i, : len(t)], boxes[i, : len(t)], valid[i, : len(t)] = t, b, True
    clip = torch.stack([c for _, c, _ in images])
    return tokens, clip, valid, boxes


def test_sam_proj_maps_sam_width_to_clip_width():
    fusion = _fusion()
    assert (fusion.sam_proj.in_features, fusion.sam_proj.out_features) == (12, 16)


def test_outputs_of_an_image_do_not_depend_on_the_other_images_box_counts():
    fusion = _fusion()
    small = _image(3, seed=1)
    alone = fusion(*_batch([small]))[0, :3]
    with_3 = fusion(*_batch([small, _image(3, seed=2)]))[0, :3]
    with_25 = fusion(*_batch([_image(25, seed=3), small]))[1, :3]
    assert alone.shape == (3, 8)
    torch.testing.assert_close(with_3, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(with_25, alone, atol=1e-5, rtol=1e-5)
    # Self-attention really mixes an image's own boxes: dropping one changes the others.
    fewer = fusion(*_batch([(small[0][:2], small[1], small[2][:2])]))[0, :2]
    assert (fewer - alone[:2]).abs().max() > 1e-4


def test_padding_garbage_does_not_leak_into_real_boxes():
    fusion = _fusion()
    tokens, clip, valid, boxes = _batch([_image(3, seed=4), _image(25, seed=5)])
    reference = fusion(tokens, clip, valid, boxes)[0, :3]
    tokens[0, 3:] = 1e3 * torch.randn(22, 12)
    boxes[0, 3:] = 7.0
    torch.testing.assert_close(fusion(tokens, clip, valid, boxes)[0, :3], reference,
                               atol=1e-5, rtol=1e-5)


def test_an_image_without_boxes_gives_finite_outputs():
    fusion = _fusion(self_attention=True)
    tokens, clip, valid, boxes = _batch([_image(3, seed=6), _image(1, seed=7)])
    valid[1] = False
    out = fusion(tokens, clip, valid, boxes)
    assert torch.isfinite(out).all()


def test_box_geometry_is_scale_free_and_ranks_top_to_bottom():
    from vertspine.modeling.vertfound.fusion import box_geometry

    boxes = torch.tensor([[[0.1, 0.5, 0.3, 0.6], [0.1, 0.1, 0.4, 0.3], [0.0, 0.0, 0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    geometry = box_geometry(boxes, valid)
    assert geometry.shape == (1, 3, 9)
    assert geometry[0, :, 7].tolist() == [1.0, 0.0, 0.0]  # rank: the second box is on top
    torch.testing.assert_close(geometry[0, 0, 4], torch.tensor(0.2 / 0.1).log())
    # relative sizes: log h minus the image's mean log h
    h = torch.tensor([0.1, 0.2]).log()
    torch.testing.assert_close(geometry[0, :2, 6], h - h.mean())
    assert (geometry[0, 2] == 0).all()
    assert geometry[0, 0, 8] == pytest.approx(2 / 25)
