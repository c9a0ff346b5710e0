"""LVM-Med ViT backbones: SAM-encoder-layout checkpoints load key for key into segment_anything's
ImageEncoderViT, the backbone's output equals ImageEncoderViT's on the same input, and the
simple feature pyramid gives p2..p6."""
from functools import partial

import pytest
import torch
from detectron2.modeling import build_backbone
from segment_anything.modeling.image_encoder import ImageEncoderViT

from vertspine.config import get_vertspine_cfg
from vertspine.modeling.lvmmed import LVMMedViT

TINY = {"IMG_SIZE": 64, "PATCH_SIZE": 16, "EMBED_DIM": 32, "DEPTH": 4, "NUM_HEADS": 2,
        "WINDOW_SIZE": 2, "GLOBAL_ATTN_INDEXES": [1, 3], "NECK_CHANNELS": 16}


def _sam_encoder(use_abs_pos: bool) -> ImageEncoderViT:
    """A tiny encoder built as segment_anything's build_sam does, with random rel-pos tables."""
    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        img_size=64, patch_size=16, embed_dim=32, depth=4, num_heads=2, mlp_ratio=4.0,
        out_chans=16, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        use_abs_pos=use_abs_pos, use_rel_pos=True, rel_pos_zero_init=True, window_size=2,
        global_attn_indexes=(1, 3))
    for name, param in encoder.named_parameters():
        if "rel_pos" in name or name == "pos_embed":
            param.data.normal_(0, 0.5)
    return encoder.eval()


def _cfg(weights="", name="build_lvmmed_vit_backbone", **vit):
    cfg = get_vertspine_cfg()
    cfg.MODEL.BACKBONE.NAME = name
    cfg.MODEL.LVMMED.ENCODER_WEIGHTS = weights
    cfg.MODEL.LVMMED.WEIGHTS_LAYOUT = "sam_vit_b"
    for key, value in {**TINY, **vit}.items():
        cfg.MODEL.LVMMED.VIT[key] = value
    cfg.MODEL.LVMMED.PYRAMID.OUT_CHANNELS = 24
    return cfg


@pytest.fixture(scope="module")
def lvmmed_vit_file(tmp_path_factory):
    """An encoder-only checkpoint in the LVM-Med layout: SAM names, no pos_embed."""
    encoder = _sam_encoder(use_abs_pos=False)
    path = str(tmp_path_factory.mktemp("lvmmed_vit") / "lvmmed_vit.pth")
    torch.save(encoder.state_dict(), path)
    return {"encoder": encoder, "path": path}


def test_full_size_vit_b_has_the_lvmmed_key_layout():
    with torch.device("meta"):
        state = LVMMedViT().encoder.state_dict()
    assert "pos_embed" not in state
    assert len([k for k in state if k.startswith("blocks.")]) == 12 * 14  # 14 tensors a block
    assert {k for k in state if k.startswith("neck.")} == {
        "neck.0.weight", "neck.1.weight", "neck.1.bias", "neck.2.weight", "neck.3.weight",
        "neck.3.bias"}
    assert set(k.split(".", 2)[2] for k in state if k.startswith("blocks.0.")) == {
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
        "attn.proj.bias", "attn.rel_pos_h", "attn.rel_pos_w", "norm2.weight", "norm2.bias",
        "mlp.lin1.weight", "mlp.lin1.bias", "mlp.lin2.weight", "mlp.lin2.bias"}
    # window blocks: 2 * 14 - 1 rows; global blocks 2, 5, 8, 11: 2 * 1024 / 16 - 1 rows
    assert list(state["blocks.0.attn.rel_pos_h"].shape) == [27, 64]
    assert list(state["blocks.2.attn.rel_pos_h"].shape) == [127, 64]
    assert list(state["patch_embed.proj.weight"].shape) == [768, 3, 16, 16]


@pytest.mark.parametrize("use_neck", [True, False])
def test_output_equals_image_encoder_vit(lvmmed_vit_file, use_neck):
    backbone = build_backbone(_cfg(lvmmed_vit_file["path"], USE_NECK=use_neck)).eval()
    report = backbone.lvmmed_report
    assert report.complete and len(report.loaded) == len(backbone.encoder.state_dict())
    assert len(report.dropped) == (0 if use_neck else 6)  # the neck's six tensors
    reference = lvmmed_vit_file["encoder"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = backbone(x)["last_feat"]
        if use_neck:
            expected = reference(x)  # ImageEncoderViT.forward, neck included
        else:
            tokens = reference.patch_embed(x)
            for block in reference.blocks:
                tokens = block(tokens)
            expected = tokens.permute(0, 3, 1, 2)
    assert list(ours.shape) == [2, 16 if use_neck else 32, 4, 4]
    assert backbone.output_shape()["last_feat"].channels == ours.shape[1]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_other_input_sizes_are_padded_to_the_patch(lvmmed_vit_file):
    backbone = build_backbone(_cfg(lvmmed_vit_file["path"])).eval()
    x = torch.randn(1, 3, 50, 90)
    with torch.no_grad():
        ours = backbone(x)["last_feat"]
        # segment_anything pads windows and interpolates the global rel-pos tables itself
        expected = lvmmed_vit_file["encoder"](torch.nn.functional.pad(x, (0, 6, 0, 14)))
    assert list(ours.shape) == [1, 16, 4, 6]
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_full_sam_checkpoint_with_abs_pos(tmp_path):
    encoder = _sam_encoder(use_abs_pos=True)
    state = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({"prompt_encoder.pe_layer.gaussian": torch.zeros(2, 2),
                  "mask_decoder.iou_token.weight": torch.zeros(1, 4)})
    path = str(tmp_path / "sam_vit_b.pth")
    torch.save(state, path)
    backbone = build_backbone(_cfg(path, USE_ABS_POS=True)).eval()
    assert backbone.lvmmed_report.complete
    assert sorted(backbone.lvmmed_report.dropped) == [
        "mask_decoder.iou_token.weight", "prompt_encoder.pe_layer.gaussian"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x)["last_feat"], encoder(x), rtol=1e-5, atol=1e-5)
        assert list(backbone(torch.randn(1, 3, 96, 32))["last_feat"].shape) == [1, 16, 6, 2]

    with pytest.raises(ValueError, match="pos_embed") as error:  # LVM-Med settings: no pos_embed
        build_backbone(_cfg(path))
    assert "Unexpected in the checkpoint" in str(error.value)


def test_layout_checks(lvmmed_vit_file):
    cfg = _cfg(lvmmed_vit_file["path"])
    cfg.MODEL.LVMMED.WEIGHTS_LAYOUT = "torchvision_resnet50"
    with pytest.raises(ValueError, match="cannot fill the ViT backbone"):
        build_backbone(cfg)
    with pytest.raises(ValueError, match="GLOBAL_ATTN_INDEXES"):
        build_backbone(_cfg(GLOBAL_ATTN_INDEXES=[2, 5, 8, 11]))  # DEPTH 4
    with pytest.raises(ValueError, match="rel_pos_h") as error:  # other IMG_SIZE: other tables
        build_backbone(_cfg(lvmmed_vit_file["path"], IMG_SIZE=128))
    assert "checkpoint [7, 16], model [15, 16]" in str(error.value)


def test_pyramid_levels_and_detectron2_round_trip(lvmmed_vit_file, tmp_path):
    cfg = _cfg(lvmmed_vit_file["path"], name="build_lvmmed_vit_pyramid_backbone", USE_NECK=False)
    backbone = build_backbone(cfg).eval()
    assert backbone.net.lvmmed_report.complete
    assert backbone.size_divisibility == 32
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 64, 96))
    assert {k: list(v.shape) for k, v in features.items()} == {
        "p2": [2, 24, 16, 24], "p3": [2, 24, 8, 12], "p4": [2, 24, 4, 6], "p5": [2, 24, 2, 3],
        "p6": [2, 24, 1, 2]}
    assert {k: s.stride for k, s in backbone.output_shape().items()} == {
        "p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}

    path = str(tmp_path / "model_final.pth")
    torch.save({"model": {f"backbone.{k}": v for k, v in backbone.net.state_dict().items()}}, path)
    cfg = _cfg(path, USE_NECK=False)
    cfg.MODEL.LVMMED.WEIGHTS_LAYOUT = "detectron2"
    vit = build_backbone(cfg)
    assert vit.lvmmed_report.complete
    torch.testing.assert_close(vit.encoder.blocks[3].attn.rel_pos_w,
                               lvmmed_vit_file["encoder"].blocks[3].attn.rel_pos_w)
