"""LiteMedSAM's TinyViT: the official key layout at full size, timm parity of its blocks, the
grid it produces, and size errors."""
import pytest
import torch

from prompt_seg_test_utils import lite_medsam_encoder_shapes, tiny_cfg
from vertspine.modeling.prompt_seg import TinyViT, build_prompt_seg_encoder

LITE_MEDSAM = dict(embed_dims=[64, 128, 160, 320], depths=[2, 2, 6, 2], num_heads=[2, 4, 5, 10],
                   window_sizes=[7, 7, 14, 7])


def test_full_size_state_dict_is_lite_medsam_layout():
    with torch.device("meta"):
        encoder = TinyViT(**LITE_MEDSAM)
    ours = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    expected = lite_medsam_encoder_shapes(LITE_MEDSAM["embed_dims"], LITE_MEDSAM["depths"],
                                          LITE_MEDSAM["num_heads"], LITE_MEDSAM["window_sizes"])
    assert ours == expected
    # the merge into the last stage keeps the 64 x 64 grid; the earlier ones halve it
    strides = [encoder.layers[i].downsample.conv2.c.stride for i in range(3)]
    assert strides == [(2, 2), (2, 2), (1, 1)]
    assert sum(v.numel() for k, v in encoder.state_dict().items()
               if "running" not in k and "num_batches" not in k) == 5_726_740


def test_embedding_grid_and_width():
    encoder = build_prompt_seg_encoder(tiny_cfg())
    assert (encoder.input_size, encoder.embedding_size, encoder.pixel_scaling) == (32, 8, "minmax")
    out = encoder.module.eval()(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 256, 8, 8)


def _timm_state(ours):
    """Our Conv2d_BN children are the original's ``c``/``bn``; timm calls the conv ``conv``."""
    return {k.replace(".c.", ".conv."): v for k, v in ours.state_dict().items()}


def test_attention_block_equals_timm_on_a_padded_grid():
    from timm.models.tiny_vit import TinyVitBlock

    torch.manual_seed(0)
    encoder = TinyViT(embed_dims=[8, 16], depths=[1, 1], num_heads=[1, 2], window_sizes=[4, 3])
    ours = encoder.layers[1].blocks[0].eval()
    for p in ours.parameters():  # non-trivial BN, biases and attention biases
        torch.nn.init.normal_(p, std=0.3)
    theirs = TinyVitBlock(16, num_heads=2, window_size=3, mlp_ratio=4.0).eval()
    theirs.load_state_dict(_timm_state(ours))
    x = torch.randn(2, 16, 7, 5)  # 7 x 5 grid: padded to 9 x 6 for 3 x 3 windows
    expected = theirs(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_mbconv_equals_timm():
    from timm.models.tiny_vit import MBConv

    torch.manual_seed(0)
    ours = TinyViT(embed_dims=[8, 16], depths=[1, 1], num_heads=[1, 2],
                   window_sizes=[4, 4]).layers[0].blocks[0].eval()
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.3)
    theirs = MBConv(8, 8, 4.0, torch.nn.GELU, 0.0).eval()
    theirs.load_state_dict(_timm_state(ours))
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x.clone()), atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_changes_nothing_but_memory():
    """Same loss, gradients and BatchNorm statistics with and without recomputing the blocks."""
    results = []
    for grad_checkpoint in (False, True):
        torch.manual_seed(0)
        encoder = TinyViT(embed_dims=[8, 16, 24], depths=[2, 1, 1], num_heads=[1, 2, 2],
                          window_sizes=[4, 4, 4], grad_checkpoint=grad_checkpoint).train()
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        encoder(x).square().mean().backward()
        results.append((encoder.state_dict(),
                        {n: p.grad for n, p in encoder.named_parameters()}))
    (state, grads), (state_ckpt, grads_ckpt) = results
    assert state["layers.0.blocks.0.conv1.bn.num_batches_tracked"].item() == 1
    for key in state:
        torch.testing.assert_close(state_ckpt[key], state[key], atol=1e-6, rtol=1e-5)
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    (["MODEL.PROMPT_SEG.TINY_VIT.DEPTHS", "[1, 1, 1]"], "one entry per stage"),
    (["MODEL.PROMPT_SEG.TINY_VIT.NUM_HEADS", "[1, 3, 2, 2]"],
     "EMBED_DIMS[1] 16 is not divisible"),
    (["INPUT.PROMPT_SEG.IMAGE_SIZE", "30"],
     "INPUT.PROMPT_SEG.IMAGE_SIZE 30 is not a multiple of 4"),
    (["MODEL.PROMPT_SEG.ENCODER", "vit_huge"], "MODEL.PROMPT_SEG.ENCODER 'vit_huge' is not"),
])
def test_bad_sizes_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_prompt_seg_encoder(tiny_cfg(*overrides))
