"""The three SAM key layouts (official SAM, MedSAM, LVM-Med ViT-B) load key for key from files
written in that layout, into a built ``Sam`` or its image encoder, with one report format."""
from functools import partial

import pytest
import torch
from segment_anything.modeling import ImageEncoderViT

from vertspine.layers.sam import (
    SamSize,
    build_sam,
    build_sam_image_encoder,
    load_sam_checkpoint,
    sam_key_layout,
    sam_state_for,
    sam_variant,
)
from vertspine.utils.checkpoint_report import CheckpointReport
from sam_test_utils import TINY as SAM_SIZE, sam_forward

LVMMED_SIZE = SamSize(**{**SAM_SIZE.__dict__, "use_abs_pos": False})


def randomised(module):
    """Non-zero values everywhere (pos_embed and rel-pos tables start at zero)."""
    with torch.no_grad():
        for param in module.parameters():
            param.normal_(0, 0.2)
    return module


def lvmmed_encoder() -> ImageEncoderViT:
    """LVM-Med's ViT-B construction (``our_vit.py``: SAM's encoder without absolute positions),
    at tiny sizes."""
    torch.manual_seed(0)
    return randomised(ImageEncoderViT(
        img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, mlp_ratio=4.0,
        out_chans=32, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_abs_pos=False, use_rel_pos=True, rel_pos_zero_init=True, window_size=2,
        global_attn_indexes=(1,))).eval()


@pytest.mark.parametrize("layout", ["official_sam", "medsam"])
def test_whole_model_layouts_load_key_for_key(tmp_path, layout):
    source = randomised(build_sam(SAM_SIZE, 64, seed=0))
    target = build_sam(SAM_SIZE, 64, seed=1)
    path = tmp_path / f"{layout}.pth"
    if layout == "official_sam":  # sam_vit_b_01ec64.pth: a bare state dict
        torch.save(source.state_dict(), path)
    else:  # medsam_vit_b.pth's keys, inside MedSAM's training checkpoint
        optimizer = torch.optim.AdamW(source.parameters(), lr=1e-4)
        torch.save({"model": source.state_dict(), "optimizer": optimizer.state_dict(),
                    "epoch": 3}, path)
    report = load_sam_checkpoint(target, path)
    assert isinstance(report, CheckpointReport) and report.complete
    assert report.loaded == list(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    for a, b in zip(sam_forward(source), sam_forward(target)):
        assert torch.equal(a, b)


def test_lvmmed_layout_loads_key_for_key_into_the_image_encoder(tmp_path):
    source = lvmmed_encoder()
    path = tmp_path / "lvmmed_vit.pth"
    torch.save(source.state_dict(), path)
    assert "pos_embed" not in source.state_dict()
    assert sam_key_layout(source.state_dict()) == "image_encoder"
    encoder = build_sam_image_encoder(LVMMED_SIZE, 64).eval()
    report = load_sam_checkpoint(encoder, path)
    assert report.complete and report.loaded == list(source.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(encoder(x), source(x))

    sam = build_sam(LVMMED_SIZE, 64, seed=0)  # a whole model: only its encoder is in the file
    with pytest.raises(ValueError, match="(?s)nothing was loaded.*Missing.*prompt_encoder"):
        load_sam_checkpoint(sam, path)
    report = load_sam_checkpoint(sam, path, strict=False)
    assert report.loaded == [f"image_encoder.{k}" for k in source.state_dict()]
    assert report.missing and all(k.startswith(("prompt_encoder.", "mask_decoder."))
                                  for k in report.missing)
    assert not report.unexpected and not report.skipped
    with torch.no_grad():
        assert torch.equal(sam.image_encoder(x), source(x))


def test_whole_model_file_fills_an_image_encoder():
    source = randomised(build_sam(SAM_SIZE, 64, seed=0))
    encoder = build_sam_image_encoder(SAM_SIZE, 64)
    others = [k for k in source.state_dict() if not k.startswith("image_encoder.")]
    report = load_sam_checkpoint(encoder, source.state_dict())
    assert report.complete and len(report.loaded) == len(encoder.state_dict())
    assert f"its other {len(others)} keys not used" in str(report)
    assert torch.equal(encoder.pos_embed, source.image_encoder.pos_embed)
    state, dropped = sam_state_for(source.state_dict(), "image_encoder")
    assert sorted(dropped) == sorted(others) and set(state) == set(encoder.state_dict())


def test_variants_and_shape_mismatches_are_reported():
    source = build_sam(SAM_SIZE, 64, seed=0)
    assert sam_variant(source.state_dict()) == "custom (width 32, depth 2)"
    assert sam_variant(source.image_encoder.state_dict()) == "custom (width 32, depth 2)"
    with torch.device("meta"):
        assert sam_variant(build_sam("vit_b").state_dict()) == "vit_b"
        assert sam_variant(build_sam("vit_l").image_encoder.state_dict()) == "vit_l"
    deeper = build_sam(SamSize(**{**SAM_SIZE.__dict__, "encoder_depth": 3}), 64, seed=0)
    with pytest.raises(ValueError, match=r"SAM custom \(width 32, depth 3\) checkpoint; the model "
                                         r"is SAM custom \(width 32, depth 2\)"):
        load_sam_checkpoint(build_sam(SAM_SIZE, 64), deeper.state_dict())
    bigger = build_sam(SAM_SIZE, 128, seed=0)  # other image size: other pos_embed / rel-pos tables
    target = build_sam(SAM_SIZE, 64, seed=1)
    report = load_sam_checkpoint(target, bigger.state_dict(), strict=False)
    assert report.skipped == {
        "image_encoder.pos_embed": "checkpoint [1, 8, 8, 32], model [1, 4, 4, 32]",
        "image_encoder.blocks.1.attn.rel_pos_h": "checkpoint [15, 16], model [7, 16]",
        "image_encoder.blocks.1.attn.rel_pos_w": "checkpoint [15, 16], model [7, 16]"}
    assert len(report.loaded) == len(target.state_dict()) - 3
    with pytest.raises(ValueError, match="Not a SAM state dict"):
        load_sam_checkpoint(target, {"conv1.weight": torch.zeros(1)})
