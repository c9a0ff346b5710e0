"""EfficientViT-SAM encoders: shapes, parity with the official code, the l0.pt and DAFT layouts."""
import functools
import os

import pytest
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

from efficientvit_fixtures import (
    official_l0_listing,
    official_tiny,
    official_tiny_input,
    prompt_seg_cfg,
    single_torch_thread,
)
from vertspine.modeling.prompt_seg import PROMPT_SEG_ENCODER_REGISTRY
from vertspine.modeling.prompt_seg.efficientvit_sam import (
    EFFICIENTVIT_SAM_SPECS,
    EfficientViTSamEncoder,
)
from vertspine.modeling.prompt_seg.efficientvit_weights import (
    convert_official_encoder_keys,
    load_daft_checkpoints,
    load_efficientvit_sam_weights,
)

L0_IMAGE_ENCODER_NUMEL = 30_751_236  # tensors of the official l0.pt's image_encoder.* (listing)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_torch_thread():
        yield


def _tiny(seed: int = 0) -> EfficientViTSamEncoder:
    torch.manual_seed(seed)
    return EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS["tiny"]).eval()


@functools.lru_cache(maxsize=None)
def _sam_parts():
    """A small segment-anything prompt encoder and mask decoder, keyed as a whole model file
    holds them (``prompt_encoder.*``, ``mask_decoder.*``); not to be modified."""
    torch.manual_seed(0)
    prompt = PromptEncoder(embed_dim=32, image_embedding_size=(64, 64),
                           input_image_size=(256, 256), mask_in_chans=4)
    decoder = MaskDecoder(transformer_dim=32, transformer=TwoWayTransformer(
        depth=1, embedding_dim=32, mlp_dim=16, num_heads=2), iou_head_hidden_dim=16)
    return {**{f"prompt_encoder.{k}": v for k, v in prompt.state_dict().items()},
            **{f"mask_decoder.{k}": v for k, v in decoder.state_dict().items()}}


def _official_whole_model():
    """A whole EfficientViT-SAM model file in the official layout (tiny encoder)."""
    return {**official_tiny()["image_encoder"], **_sam_parts()}


def test_l0_embedding_is_fixed_64x64_at_256px_and_matches_the_official_listing():
    with torch.device("meta"):
        encoder = EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS["l0"])
        out = encoder(torch.empty(2, 3, 256, 256))
    assert out.shape == (2, 256, 64, 64)
    listing = official_l0_listing()
    official = {key[len("image_encoder."):]: shape for key, shape in listing
                if key.startswith("image_encoder.")}
    assert len(official) == 272 and sum(torch.Size(s).numel() for s in official.values()) \
        == L0_IMAGE_ENCODER_NUMEL
    converted = convert_official_encoder_keys(dict.fromkeys(official))
    ours = {key: tuple(value.shape) for key, value in encoder.state_dict().items()}
    assert list(converted) == list(ours)  # key for key, in order
    assert {key: official[old] for key, old in zip(converted, official)} == ours


def test_official_listing_hands_sam_parts_in_segment_anything_layout():
    with torch.device("meta"):  # EfficientViT-SAM's prompt encoder and decoder are SAM's
        prompt = PromptEncoder(embed_dim=256, image_embedding_size=(64, 64),
                               input_image_size=(1024, 1024), mask_in_chans=16)
        decoder = MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8), transformer_dim=256,
            iou_head_depth=3, iou_head_hidden_dim=256)
    expected = {**{f"prompt_encoder.{k}": tuple(v.shape) for k, v in prompt.state_dict().items()},
                **{f"mask_decoder.{k}": tuple(v.shape) for k, v in decoder.state_dict().items()}}
    listing = {key: shape for key, shape in official_l0_listing()
               if not key.startswith("image_encoder.")}
    assert listing == expected


def test_tiny_encoder_equals_the_official_code_on_its_weights():
    fixture = official_tiny()
    x = official_tiny_input()
    assert float(x.double().sum()) == pytest.approx(float(fixture["input_sum"]), abs=1e-6)
    encoder = _tiny()
    loaded = load_efficientvit_sam_weights(encoder, _official_whole_model())
    assert loaded.report.complete and len(loaded.report.loaded) == len(fixture["image_encoder"])
    assert set(loaded.sam_parts) == set(_sam_parts())
    with torch.no_grad():
        out = encoder(x)
    assert out.shape == (1, 256, 64, 64)
    torch.testing.assert_close(out[:, :, ::16, ::16], fixture["output_every_16th"],
                               atol=2e-5, rtol=1e-4)
    assert float(out.double().sum()) == pytest.approx(float(fixture["output_sum"]), abs=1e-2)
    assert float(out.double().abs().sum()) == pytest.approx(float(fixture["output_abs_sum"]),
                                                            rel=1e-6)


def test_tiny_encoder_shape_at_32px():
    with torch.no_grad():
        assert _tiny()(torch.rand(2, 3, 32, 32)).shape == (2, 256, 64, 64)


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_a_file_of_another_variant_fails_strict_loading_naming_keys():
    with torch.device("meta"):
        l0 = EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS["l0"])
    with pytest.raises(ValueError, match="skipped.*\n(.*\n)*.*backbone.stem.in_conv.conv.weight: "
                                         r"file \(8, 3, 3, 3\), model \(32, 3, 3, 3\)"):
        load_efficientvit_sam_weights(l0, _official_whole_model())
    partial = load_efficientvit_sam_weights(l0, _official_whole_model(), strict=False)
    assert partial.report.missing and partial.report.skipped
    assert "neck.proj.bias" in partial.report.loaded  # 256 channels in both


def test_registered_builder_reads_image_size_and_weights(tmp_path):
    path = str(tmp_path / "l0_layout.pt")
    torch.save({"state_dict": _official_whole_model()}, path)  # a wrapped file, as l0.pt may be
    cfg = prompt_seg_cfg(image_size=256)
    cfg.MODEL.PROMPT_SEG.EFFICIENTVIT.WEIGHTS = path
    built = PROMPT_SEG_ENCODER_REGISTRY.get("efficientvit_sam_tiny")(cfg)
    assert (built.input_size, built.embedding_size, built.pixel_scaling) == (256, 64, "minmax")
    torch.testing.assert_close(
        built.module.state_dict()["backbone.stages.3.blocks.1.context_module.main.qkv.conv.weight"],
        official_tiny()["image_encoder"][
            "image_encoder.backbone.stages.4.op_list.1.context_module.main.qkv.conv.weight"])
    cfg.INPUT.PROMPT_SEG.IMAGE_SIZE = 100
    with pytest.raises(ValueError, match="INPUT.PROMPT_SEG.IMAGE_SIZE=100"):
        PROMPT_SEG_ENCODER_REGISTRY.get("efficientvit_sam_tiny")(cfg)


def _write_daft_folder(folder, names):
    os.makedirs(folder, exist_ok=True)
    whole = _official_whole_model()
    for i, name in enumerate(names):
        state = {key: value + i if value.is_floating_point() else value
                 for key, value in whole.items()}
        if name == "3D":  # a DataParallel training checkpoint (medsam_lite_best.pth)
            state = {"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
        torch.save(state, os.path.join(folder, f"{name}.pth"))


def test_daft_folder_loads_every_modality_model(tmp_path):
    _write_daft_folder(tmp_path, ["general", "3D", "XRay"])
    (tmp_path / "notes.txt").write_text("ignored")
    models = load_daft_checkpoints(str(tmp_path))
    assert list(models) == ["3D", "XRay", "general"]
    for offset, name in enumerate(["general", "3D", "XRay"]):
        encoder = _tiny()
        assert load_efficientvit_sam_weights(encoder, models[name]).report.complete
        weight = encoder.state_dict()["neck.proj.weight"]
        expected = official_tiny()["image_encoder"][
            "image_encoder.neck.output_ops.0.op_list.0.conv.weight"]
        torch.testing.assert_close(weight, expected + offset)


@pytest.mark.parametrize("names, stray, match", [
    (["general", "X-Ray"], False, r"\['X-Ray.pth'\] are not DAFT model names"),
    (["3D", "XRay"], False, "has no general.pth"),
    (["general"], True, r"general.pth is not a whole EfficientViT-SAM model: .*optimizer.step"),
])
def test_daft_folder_with_bad_names_or_files_is_refused(tmp_path, names, stray, match):
    _write_daft_folder(tmp_path, names)
    if stray:
        state = torch.load(tmp_path / "general.pth")
        torch.save({**state, "optimizer.step": torch.zeros(1)}, tmp_path / "general.pth")
    with pytest.raises(ValueError, match=match):
        load_daft_checkpoints(str(tmp_path))
