"""vertspine.layers.sam builds what segment_anything builds: the registry's modules and
initialisation at 1024 px, the same outputs as segment_anything's ``Sam`` on the same weights at
tiny sizes, the embedding grid following the image size, and the encoder at any input size."""
import subprocess
import sys
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from segment_anything import sam_model_registry
from segment_anything.modeling import (
    ImageEncoderViT,
    MaskDecoder,
    PromptEncoder,
    Sam,
    TwoWayTransformer,
)

from vertspine.layers.sam import (
    SamSize,
    build_sam,
    build_sam_image_encoder,
    build_sam_prompt_encoder,
    encode_image,
)
from sam_test_utils import TINY, sam_forward


def reference_sam(image_size: int) -> Sam:
    """TINY written out with segment_anything's classes, as its ``_build_sam`` does."""
    grid = image_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=2, embed_dim=32, img_size=image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=2, out_chans=32),
        prompt_encoder=PromptEncoder(embed_dim=32, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=4),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=32),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def test_released_sizes_initialise_as_sam_model_registry():
    torch.manual_seed(3)
    reference = sam_model_registry["vit_b"]()
    ours = build_sam("vit_b", seed=3)
    assert not ours.training and not reference.training
    assert list(ours.state_dict()) == list(reference.state_dict())
    built = ours.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(built[key], value), key
    with torch.device("meta"):
        for name in ("vit_l", "vit_h"):
            expected = {k: v.shape for k, v in sam_model_registry[name]().state_dict().items()}
            assert {k: v.shape for k, v in build_sam(name).state_dict().items()} == expected


def test_seed_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    first = build_sam(TINY, 64, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    second = build_sam(TINY, 64, seed=11)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))


@pytest.mark.parametrize("image_size", [64, 96])
def test_outputs_equal_segment_anything_sam_on_the_same_weights(image_size):
    ours = build_sam(TINY, image_size, seed=0)
    reference = reference_sam(image_size)
    reference.load_state_dict(ours.state_dict())  # strict: the same keys and shapes
    grid = image_size // 16
    assert ours.prompt_encoder.image_embedding_size == (grid, grid)
    assert ours.image_encoder.pos_embed.shape == (1, grid, grid, 32)
    assert ours.image_encoder.blocks[1].attn.rel_pos_h.shape == (2 * grid - 1, 16)
    masks, logits, iou = sam_forward(ours, image_size)
    assert masks.shape == (2, 3, image_size, image_size * 3 // 4)
    assert logits.shape == (2, 3, 4 * grid, 4 * grid)
    for a, b in zip((masks, logits, iou), sam_forward(reference, image_size)):
        assert torch.equal(a, b)


def test_prompt_encoder_at_litemedsam_geometry():
    """256 px input, 64 x 64 embedding (TinyViT / EfficientViT encoders, stride 4)."""
    prompt = build_sam_prompt_encoder(256, 256, 64)
    assert prompt.get_dense_pe().shape == (1, 256, 64, 64)
    box = torch.tensor([[10.0, 20.0, 200.0, 250.0]])
    sparse, dense = prompt(points=None, boxes=box, masks=None)
    assert sparse.shape == (1, 2, 256) and dense.shape == (1, 256, 64, 64)
    assert prompt.mask_input_size == (256, 256)


def test_encode_image_equals_the_encoder_at_its_size_and_pads_other_sizes():
    encoder = build_sam_image_encoder(TINY, 64).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        encoder.pos_embed.normal_(0, 0.5)  # not zero, so adding it is checked
        x = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(encode_image(encoder, x), encoder(x), rtol=0, atol=0)
        small = torch.randn(1, 3, 50, 60)  # padded to 64 x 64: the built grid
        torch.testing.assert_close(encode_image(encoder, small),
                                   encoder(F.pad(small, (0, 4, 0, 14))), rtol=0, atol=0)
        assert encode_image(encoder, torch.randn(1, 3, 96, 32)).shape == (1, 32, 6, 2)


@pytest.mark.parametrize("change, message", [
    (dict(image_size=100), "image_size 100 is not a multiple of patch_size 16"),
    (dict(encoder_heads=3), "encoder_dim 32 is not divisible by encoder_heads 3"),
    (dict(global_attn_indexes=(1, 2)),
     r"global_attn_indexes \[1, 2\] has blocks \[2\] outside 0..1"),
])
def test_sizes_are_checked_before_building(change, message):
    image_size = change.pop("image_size", 64)
    size = SamSize(**{**TINY.__dict__, **change})
    with pytest.raises(ValueError, match=message):
        build_sam(size, image_size)


def test_errors_name_the_keys_given_and_unknown_sizes_are_refused():
    size = SamSize(**{**TINY.__dict__, "global_attn_indexes": (5,)})
    names = {"global_attn_indexes": "MODEL.X.GLOBAL", "encoder_depth": "MODEL.X.DEPTH"}
    with pytest.raises(ValueError, match=r"MODEL.X.GLOBAL \[5\] has blocks \[5\] outside 0..1 "
                                         r"\(MODEL.X.DEPTH 2\)"):
        build_sam_image_encoder(size, 64, names=names)
    with pytest.raises(ValueError, match="SAM size 'vit_x' is not one of"):
        build_sam("vit_x")


def test_importing_vertspine_imports_neither_segment_anything_nor_open_clip():
    code = ("import sys, vertspine, vertspine.layers.sam; "
            "print([m for m in ('segment_anything', 'open_clip') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
