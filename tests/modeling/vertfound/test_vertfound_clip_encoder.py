"""CLIP image tokens: residual-stream tokens of the chosen blocks, before ln_post."""
import pytest
import torch

from vertspine.modeling.vertfound.clip_encoder import ClipImageTokens, build_clip
from vertfound_test_utils import tiny_cfg


def _tiny_clip():
    config = tiny_cfg().MODEL.VERTFOUND.CLIP.MODEL_CONFIG
    model, tokenizer = build_clip("", config, seed=3)
    return model.eval(), tokenizer


def _manual_tokens(visual, x):
    """Iterate the resblocks by hand: conv1, class token, positions, ln_pre, blocks."""
    tokens = visual.conv1(x).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(len(x), 1, -1)
    tokens = visual.ln_pre(torch.cat([cls, tokens], 1) + visual.positional_embedding)
    out = []
    for block in visual.transformer.resblocks:
        tokens = block(tokens)
        out.append(tokens)
    return out


def test_tokens_match_the_resblocks_in_the_requested_order():
    model, _ = _tiny_clip()
    encoder = ClipImageTokens(model.visual, [-1, 0, 1])
    assert encoder.layers == [1, 0, 1]
    x = torch.randn(2, 3, encoder.image_size, encoder.image_size)
    with torch.no_grad():
        tokens = encoder(x)
        manual = _manual_tokens(model.visual, x)
    grid = (encoder.image_size // 8) ** 2
    assert tokens.shape == (2, 3, grid + 1, encoder.width)
    for i, layer in enumerate([1, 0, 1]):
        torch.testing.assert_close(tokens[:, i], manual[layer], atol=1e-5, rtol=1e-5)


def test_preprocess_pads_and_normalises_to_clip_size():
    model, _ = _tiny_clip()
    encoder = ClipImageTokens(model.visual, [-1], resize="pad")
    image = torch.full((3, 64, 32), 255, dtype=torch.uint8)
    x = encoder.preprocess([image])
    size = encoder.image_size
    assert x.shape == (1, 3, size, size)
    white = (255 - torch.tensor(encoder.mean) * 255) / (torch.tensor(encoder.std) * 255)
    torch.testing.assert_close(x[0, :, :, 0], white[:, None].expand(3, size))
    assert (x[0, :, :, size // 2:] == 0).all()  # padding right of the half-width image


def test_bad_layers_are_refused():
    model, _ = _tiny_clip()
    with pytest.raises(ValueError, match="CLIP.LAYERS"):
        ClipImageTokens(model.visual, [5])


def test_tokenizer_context_comes_from_the_config():
    _, tokenizer = _tiny_clip()
    assert tokenizer(["cervical vertebra C1"]).shape == (1, 16)
