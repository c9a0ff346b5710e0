"""Loading SAM, OpenAI/open_clip CLIP and VertFound/RegionSpot checkpoints (tiny, official layouts)."""
import copy
import warnings
from functools import partial

import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg, convert_weights_to_lp, resize_pos_embed
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer
from torch import nn

from vertspine.layers.sam import load_sam_checkpoint, sam_variant
from vertspine.modeling.vertfound.weights import (
    build_clip_from_openai_checkpoint,
    clip_architecture,
    load_clip_checkpoint,
    load_vertfound_checkpoint,
)
from vertspine.utils.state_dict import read_state_dict

SAM_DIM, CLIP_WIDTH = 32, 64


def tiny_sam(seed):
    """A SAM built like segment_anything's _build_sam, at 64 px with 32-wide modules."""
    torch.manual_seed(seed)
    return Sam(
        image_encoder=ImageEncoderViT(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2,
                                      mlp_ratio=4, out_chans=SAM_DIM, qkv_bias=True, use_rel_pos=True,
                                      norm_layer=partial(nn.LayerNorm, eps=1e-6), window_size=2,
                                      global_attn_indexes=[1]),
        prompt_encoder=PromptEncoder(embed_dim=SAM_DIM, image_embedding_size=(4, 4),
                                     input_image_size=(64, 64), mask_in_chans=4),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer_dim=SAM_DIM, iou_head_depth=3,
                                 iou_head_hidden_dim=32,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=SAM_DIM, mlp_dim=64, num_heads=2)),
    ).eval()


def tiny_clip(seed, image_size=32):
    """An open_clip CLIP from a config dict; widths of 64 so OpenAI's rules (heads = width / 64) hold."""
    torch.manual_seed(seed)
    return open_clip.CLIP(
        embed_dim=16, quick_gelu=True,
        vision_cfg=CLIPVisionCfg(layers=2, width=CLIP_WIDTH, patch_size=8, image_size=image_size),
        text_cfg=CLIPTextCfg(context_length=8, vocab_size=64, width=CLIP_WIDTH, heads=1, layers=2),
    ).eval()


def sam_outputs(sam):
    torch.manual_seed(7)
    batch = [{"image": torch.rand(3, 64, 48) * 255, "original_size": (64, 48),
              "boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0], [10.0, 20.0, 40.0, 60.0]])}]
    with torch.no_grad():
        out = sam(batch, multimask_output=False)[0]
    return out["low_res_logits"], out["iou_predictions"]


def clip_outputs(clip, image_size=32):
    torch.manual_seed(9)
    images, tokens = torch.randn(2, 3, image_size, image_size), torch.randint(0, 64, (2, 8))
    with torch.no_grad():
        return clip.encode_image(images), clip.encode_text(tokens)


def assert_same(a, b):
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-5), (x - y).abs().max()


def test_sam_checkpoint_file_gives_the_source_outputs(tmp_path):
    source, target = tiny_sam(0), tiny_sam(1)
    path = tmp_path / "sam_tiny.pth"
    torch.save(source.state_dict(), path)  # the official layout: a bare state dict
    assert {k.split(".")[0] for k in source.state_dict()} == {"image_encoder", "prompt_encoder", "mask_decoder"}
    assert not torch.allclose(sam_outputs(source)[0], sam_outputs(target)[0])
    report = load_sam_checkpoint(target, str(path), model_type="tiny")
    assert report.complete and len(report.loaded) == len(source.state_dict())
    assert_same(sam_outputs(source), sam_outputs(target))


def fake_official_sam(width, depth):
    """Only what the variant is read from: patch embedding and block keys."""
    state = {"image_encoder.patch_embed.proj.weight": torch.zeros(width, 3, 16, 16)}
    state.update({f"image_encoder.blocks.{i}.norm1.weight": torch.zeros(1) for i in range(depth)})
    return state


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_sam_variant_from_shapes(name):
    assert sam_variant(fake_official_sam(*{"vit_b": (768, 12), "vit_l": (1024, 24),
                                           "vit_h": (1280, 32)}[name])) == name


def test_sam_mismatches_fail_clearly_before_loading():
    target = tiny_sam(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match="SAM vit_l checkpoint, but MODEL.VERTFOUND.SAM.MODEL_TYPE is 'vit_b'"):
        load_sam_checkpoint(target, fake_official_sam(1024, 24), model_type="vit_b",
                            model_type_key="MODEL.VERTFOUND.SAM.MODEL_TYPE")
    with pytest.raises(ValueError, match=r"SAM vit_b checkpoint; the model is SAM custom \(width 32, depth 2\)"):
        load_sam_checkpoint(target, fake_official_sam(768, 12))
    broken = tiny_sam(0).state_dict()
    broken.pop("mask_decoder.iou_token.weight")
    with pytest.raises(ValueError, match="(?s)nothing was loaded.*mask_decoder.iou_token.weight"):
        load_sam_checkpoint(target, broken)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    report = load_sam_checkpoint(target, broken, strict=False)
    assert report.missing == ["mask_decoder.iou_token.weight"] and not report.complete


def openai_state(clip, fp16=True):
    """OpenAI's layout: open_clip's CLIP keys, with the JIT's extra entries; with fp16, the
    tensors OpenAI stores in half precision (open_clip's convert_weights_to_lp picks them)."""
    if fp16:
        clip = copy.deepcopy(clip)
        convert_weights_to_lp(clip, torch.float16)
    state = {k: v.clone() for k, v in clip.state_dict().items()}
    state.update(input_resolution=torch.tensor(32), context_length=torch.tensor(8), vocab_size=torch.tensor(64))
    return state


def torchscript_archive(clip, path):
    """Like OpenAI's released files: a traced CLIP with input_resolution/context_length/vocab_size
    buffers. (open_clip's trace_model fails on a tuple image_size, so trace_module is used.)"""
    for name, value in (("input_resolution", 32), ("context_length", 8), ("vocab_size", 64)):
        if hasattr(clip, name):
            delattr(clip, name)  # open_clip keeps these two as plain ints
        clip.register_buffer(name, torch.tensor(value))
    tokens = torch.zeros(2, 8, dtype=torch.int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace_module(clip, inputs=dict(encode_text=(tokens,)))  # all weights kept
    assert "input_resolution" in traced.state_dict()
    traced.save(path)


@pytest.mark.parametrize("layout", ["openai_state_dict", "open_clip_module_prefix", "torchscript"])
def test_clip_checkpoints_give_the_source_outputs(tmp_path, layout):
    source, target = tiny_clip(0), tiny_clip(1)
    path = str(tmp_path / "clip.pt")
    if layout == "openai_state_dict":
        torch.save(openai_state(source, fp16=False), path)
    elif layout == "open_clip_module_prefix":
        torch.save({"epoch": 3, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    else:
        torchscript_archive(tiny_clip(0), path)
    report = load_clip_checkpoint(target, path)
    assert report.complete and len(report.loaded) == len(source.state_dict())
    assert_same(clip_outputs(source), clip_outputs(target))


def test_openai_fp16_weights_build_and_load_in_fp32(tmp_path):
    source = tiny_clip(0)
    path = str(tmp_path / "openai.pt")
    torch.save(openai_state(source), path)
    built = build_clip_from_openai_checkpoint(path)
    target = tiny_clip(1)
    load_clip_checkpoint(target, path)
    assert target.visual.conv1.weight.dtype == built.visual.conv1.weight.dtype == torch.float32
    rounded = tiny_clip(0)
    fp16 = openai_state(source)
    assert fp16["visual.conv1.weight"].dtype == torch.float16
    rounded.load_state_dict({k: v.float() for k, v in fp16.items() if k in source.state_dict()})
    assert_same(clip_outputs(rounded), clip_outputs(target))
    assert_same(clip_outputs(rounded), clip_outputs(built))
    assert clip_architecture(read_state_dict(path)) == "ViT width 64, 2 layers, patch 8, 32 px"


def test_clip_position_embedding_is_resized_to_the_model():
    source, target = tiny_clip(0), tiny_clip(1, image_size=48)
    report = load_clip_checkpoint(target, source.state_dict())
    assert report.complete
    expected = {"visual.positional_embedding": source.state_dict()["visual.positional_embedding"]}
    resize_pos_embed(expected, target)
    assert torch.equal(target.visual.positional_embedding.detach(), expected["visual.positional_embedding"])
    assert target.visual.positional_embedding.shape[0] == 1 + 6 * 6
    bigger_patch = open_clip.CLIP(16, CLIPVisionCfg(layers=2, width=64, patch_size=16, image_size=32),
                                  CLIPTextCfg(context_length=8, vocab_size=64, width=64, heads=1, layers=2))
    with pytest.raises(ValueError, match=r"(?s)\(ViT width 64, 2 layers, patch 8, 16 px\) does not "
                                         r"fit the CLIP model \(ViT width 64, 2 layers, patch 16, 32 px\)"
                                         r".*visual.conv1.weight: checkpoint \[64, 3, 8, 8\]"):
        load_clip_checkpoint(bigger_patch, source.state_dict())


class StandIn(nn.Module):
    """What load_vertfound_checkpoint needs: .sam, .clip and .fusion.sam_proj."""

    def __init__(self, seed):
        super().__init__()
        self.sam, self.clip = tiny_sam(seed), tiny_clip(seed)
        self.fusion = nn.Module()
        torch.manual_seed(seed)
        self.fusion.sam_proj = nn.Linear(SAM_DIM, CLIP_WIDTH)


def vertfound_checkpoint(source, *, with_encoders=True):
    """VertFound's detectron2 checkpoint layout: {"model": {"model.<part>...": tensor}, ...}."""
    model = {f"model.to_clip.{k}": v for k, v in source.fusion.sam_proj.state_dict().items()}
    model["model.pan_decoder.lateral.0.weight"] = torch.zeros(3, 3)
    model["model.projector.weight"] = torch.zeros(768, 257)
    model["model.sk_proj.fc1.weight"] = torch.zeros(128, 768)
    if with_encoders:
        model.update({f"model.sam.{k}": v for k, v in source.sam.state_dict().items()})
        model.update({f"model.clip_model.{k}": v for k, v in openai_state(source.clip, fp16=False).items()})
    return {"model": model, "iteration": 9999}


def test_vertfound_checkpoint_maps_sam_clip_and_to_clip(tmp_path):
    source, target = StandIn(0), StandIn(1)
    path = str(tmp_path / "vertfound_bl.pth")
    torch.save(vertfound_checkpoint(source), path)
    report = load_vertfound_checkpoint(target, path)
    assert report.unexpected == ["pan_decoder.lateral.0.weight", "projector.weight", "sk_proj.fc1.weight"]
    assert not report.missing and not report.skipped
    assert "fusion.sam_proj.weight" in report.loaded and "sam.mask_decoder.iou_token.weight" in report.loaded
    assert torch.equal(target.fusion.sam_proj.weight, source.fusion.sam_proj.weight)
    assert_same(sam_outputs(source.sam), sam_outputs(target.sam))
    assert_same(clip_outputs(source.clip), clip_outputs(target.clip))


def test_regionspot_checkpoint_without_encoders_loads_to_clip_only():
    source, target = StandIn(0), StandIn(1)
    sam_before = sam_outputs(target.sam)
    report = load_vertfound_checkpoint(target, vertfound_checkpoint(source, with_encoders=False), strict=True)
    assert report.loaded == ["fusion.sam_proj.weight", "fusion.sam_proj.bias"]
    assert [m.split(" ")[0] for m in report.missing] == ["sam.*", "clip.*"]
    assert "no 'sam.*' in the checkpoint" in str(report)
    assert_same(sam_before, sam_outputs(target.sam))
    wrong = vertfound_checkpoint(source, with_encoders=False)
    wrong["model"]["model.to_clip.weight"] = torch.zeros(CLIP_WIDTH, 256)  # real SAM width
    with pytest.raises(ValueError, match=r"fusion.sam_proj.weight: checkpoint \[64, 256\], model \[64, 32\]"):
        load_vertfound_checkpoint(target, wrong, strict=True)


def test_reading_refuses_pickles_and_names_missing_files(tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"model": {"w": torch.zeros(1)}, "trainer": object.__new__(StandIn)}, path)
    with pytest.raises(ValueError, match="weights_only=True.*trust_pickle=True"):
        load_vertfound_checkpoint(StandIn(0), path)
    with pytest.raises(ValueError, match="weights_only=True.*trust_pickle=True"):
        load_sam_checkpoint(tiny_sam(0), path)
    assert list(read_state_dict(path, trust_pickle=True)) == ["w"]
    loads = ((load_sam_checkpoint, tiny_sam(0)), (load_clip_checkpoint, tiny_clip(0)),
             (load_vertfound_checkpoint, StandIn(0)))
    for load, model in loads:
        with pytest.raises(FileNotFoundError, match="nowhere.pth does not exist.*download_weights.py"):
            load(model, str(tmp_path / "nowhere.pth"))
