"""Exported engines (ONNX Runtime, OpenVINO) compute what PyTorch computes, and are cached by
the weights they were exported from."""
import os

import pytest
import torch

from vertspine.layers import engines
from vertspine.layers.engines import GraphSignature, build_engine, module_fingerprint
from vertspine.layers.sam import SAM_ENCODER_SIGNATURE, build_sam
from vertspine.modeling.vertfound import SamBoxEncoder

from sam_test_utils import TINY

# Exported float32 graphs reorder sums; on these tiny encoders the largest difference seen is
# ~2e-6 (ONNX Runtime) and ~2e-6 (OpenVINO with f32 precision; bf16, its CPU default where the
# processor has it, gave 2e-2 and is not used).
ATOL = 1e-4


@pytest.fixture(scope="module")
def sam():
    return build_sam(TINY, 64, seed=0)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("engines"))


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
def test_exported_encoder_equals_torch_at_another_batch_size(sam, cache_dir, kind):
    torch.manual_seed(0)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected = sam.image_encoder(images)
    engine = build_engine(kind, sam.image_encoder, (images[:2],), SAM_ENCODER_SIGNATURE,
                          cache_dir=cache_dir)
    (embeddings,) = engine(images)
    assert embeddings.shape == expected.shape == (3, 32, 4, 4)
    assert torch.allclose(embeddings, expected, atol=ATOL)
    assert engine.kind == kind


def test_second_build_reuses_the_exported_file(sam, cache_dir, monkeypatch):
    example = torch.zeros(2, 3, 64, 64)
    build_engine("onnxruntime", sam.image_encoder, (example,), SAM_ENCODER_SIGNATURE,
                 cache_dir=cache_dir)
    onnx_files = sorted(f for f in os.listdir(cache_dir) if f.endswith(".onnx"))
    assert len(onnx_files) == 1 and not [f for f in os.listdir(cache_dir) if f.startswith(".tmp")]

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(engines, "export_onnx", no_export)
    build_engine("openvino", sam.image_encoder, (example,), SAM_ENCODER_SIGNATURE,
                 cache_dir=cache_dir)


def test_fingerprint_follows_weights_and_fixed_shapes_not_dynamic_ones(sam):
    encoder = build_sam(TINY, 64, seed=0).image_encoder
    two, three = torch.zeros(2, 3, 64, 64), torch.zeros(3, 3, 64, 64)
    first = module_fingerprint(encoder, (two,), SAM_ENCODER_SIGNATURE)
    assert first == module_fingerprint(sam.image_encoder, (three,), SAM_ENCODER_SIGNATURE)
    fixed = GraphSignature(("images",), ("image_embeddings",))
    assert first != module_fingerprint(encoder, (two,), fixed)
    with torch.no_grad():
        encoder.neck[0].weight[0, 0, 0, 0] += 1e-3
    assert first != module_fingerprint(encoder, (two,), SAM_ENCODER_SIGNATURE)


def test_bad_requests_are_refused_with_the_fix(sam, tmp_path):
    one = torch.zeros(1, 3, 64, 64)
    with pytest.raises(ValueError, match="size >= 2"):
        SAM_ENCODER_SIGNATURE.check((one,))
    with pytest.raises(ValueError, match="not one of"):
        build_engine("tensorrt", sam.image_encoder, (one,), SAM_ENCODER_SIGNATURE)
    with pytest.raises(ValueError, match="cache folder"):
        build_engine("openvino", sam.image_encoder, (one,), SAM_ENCODER_SIGNATURE)
    with pytest.raises(ValueError, match="not in"):
        GraphSignature(("x",), ("y",), {"z": {0: "n"}}).check((one,))


def test_vertfound_box_tokens_through_onnxruntime_equal_torch(sam, cache_dir):
    torch.manual_seed(1)
    images = [torch.rand(3, 64, 48) * 255, torch.rand(3, 40, 64) * 255]
    boxes = [torch.tensor([[2.0, 3.0, 30.0, 50.0]]), torch.tensor([[5.0, 5.0, 60.0, 30.0],
                                                                   [0.0, 0.0, 20.0, 20.0]])]
    with torch.no_grad():
        expected = SamBoxEncoder(sam)(images, boxes)
        exported = SamBoxEncoder(sam, engine="onnxruntime", engine_cache_dir=cache_dir)
        tokens = exported(images, boxes)
    assert [t.shape for t in tokens] == [(1, 32), (2, 32)]
    for got, want in zip(tokens, expected):
        assert torch.allclose(got, want, atol=ATOL)
    with pytest.raises(ValueError, match="MODEL.VERTFOUND.SAM.ENGINE"):
        SamBoxEncoder(sam, engine="tensorrt")
