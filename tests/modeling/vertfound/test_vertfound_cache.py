"""Embedding caches: same losses as online encoders, identity checks, generate_embedding.py."""
import os

import pytest
import torch

from conftest import load_script
from vertspine.data import register_datasets_from_config
from vertspine.modeling.vertfound import CacheMismatchError, VertFoundDatasetMapper
from vertfound_test_utils import INSTANT, records, tiny_cfg, tiny_model, vertebra_opts


def _script():
    return load_script("scripts/generate_embedding.py", "vertfound_generate_embedding")


@pytest.fixture(scope="module")
def cache_setup(tiny_phantom, tmp_path_factory):
    opts = vertebra_opts(tiny_phantom["root"])
    register_datasets_from_config(tiny_cfg(*opts))
    path = str(tmp_path_factory.mktemp("cache") / "tiny_vertebrae_train.pth")
    _script().main(["--config-file", INSTANT, "--dataset", "tiny_vertebrae_train",
                    "--output", path, *opts])
    return opts, path


def _losses(model, batch, seed=0):
    model.train()
    torch.manual_seed(seed)
    return {k: float(v.detach()) for k, v in model(batch).items()}


def test_script_writes_tokens_for_every_annotation(cache_setup):
    _, path = cache_setup
    data = torch.load(path, weights_only=False)
    recs = records("tiny_vertebrae_train", 100)
    assert set(data["images"]) == {r["image_id"] for r in recs}
    first = data["images"][recs[0]["image_id"]]
    assert first["sam_tokens"].shape == (len(recs[0]["annotations"]), 32)  # tiny PROMPT_DIM
    assert first["clip_tokens"].shape == (2, 1 + 4 * 4, 32)  # 2 layers, 32 px / patch 8
    assert data["identity"]["sam"]["weights"] == "random init seed 0"
    assert data["identity"]["sam"]["image_size"] == 128
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]


def test_cached_and_online_training_give_the_same_losses(cache_setup):
    opts, path = cache_setup
    cfg = tiny_cfg(*opts)
    mapper = VertFoundDatasetMapper(cfg, is_train=True)
    batch = [mapper(r) for r in records("tiny_vertebrae_train", 3)]
    online = tiny_model(cfg)
    cached = tiny_model(tiny_cfg(*opts, "MODEL.VERTFOUND.CACHE.PATH", path))
    calls = []
    cached.sam.image_encoder.register_forward_hook(lambda *a: calls.append("sam"))
    cached.clip.visual.register_forward_hook(lambda *a: calls.append("clip"))
    expected = _losses(online, batch)
    got = _losses(cached, batch)
    assert set(got) == {"loss_focal", "loss_ot", "loss_order"}
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6)
    assert calls == []  # neither encoder ran: all tokens came from the cache


def test_cache_of_another_model_is_refused_naming_the_field(cache_setup):
    opts, path = cache_setup
    cfg = tiny_cfg(*opts)
    batch = [VertFoundDatasetMapper(cfg, is_train=True)(records("tiny_vertebrae_train", 1)[0])]
    for key, value, field in [("MODEL.VERTFOUND.SAM.INIT_SEED", "1", "sam.weights"),
                              ("MODEL.VERTFOUND.FUSION.SAM_ROI_SIZE", "2", "sam.roi"),
                              ("MODEL.VERTFOUND.CLIP.LAYERS", "[-2, -1]", "clip.layers")]:
        model = tiny_model(tiny_cfg(*opts, "MODEL.VERTFOUND.CACHE.PATH", path, key, value))
        with pytest.raises(CacheMismatchError, match=field):
            _losses(model, batch)


def test_stale_boxes_are_refused(cache_setup, tmp_path):
    opts, path = cache_setup
    data = torch.load(path, weights_only=False)
    for entry in data["images"].values():
        entry["boxes"] = entry["boxes"] + 5.0
    stale = str(tmp_path / "stale.pth")
    torch.save(data, stale)
    cfg = tiny_cfg(*opts, "MODEL.VERTFOUND.CACHE.PATH", stale)
    batch = [VertFoundDatasetMapper(cfg, is_train=True)(records("tiny_vertebrae_train", 1)[0])]
    with pytest.raises(CacheMismatchError, match="differ from the record"):
        _losses(tiny_model(cfg), batch)


def test_a_trainable_sam_cannot_use_a_cache(cache_setup):
    opts, path = cache_setup
    with pytest.raises(ValueError, match="frozen SAM"):
        tiny_model(tiny_cfg(*opts, "MODEL.VERTFOUND.CACHE.PATH", path,
                            "MODEL.VERTFOUND.SAM.FROZEN", "False"))


def test_images_missing_from_the_cache_are_encoded_online(cache_setup, tmp_path):
    opts, path = cache_setup
    data = torch.load(path, weights_only=False)
    recs = records("tiny_vertebrae_train", 2)
    del data["images"][recs[1]["image_id"]]
    partial = str(tmp_path / "partial.pth")
    torch.save(data, partial)
    cfg = tiny_cfg(*opts)
    batch = [VertFoundDatasetMapper(cfg, is_train=True)(r) for r in recs]
    cached = tiny_model(tiny_cfg(*opts, "MODEL.VERTFOUND.CACHE.PATH", partial))
    encoded = []
    cached.sam.image_encoder.register_forward_hook(lambda m, a, out: encoded.append(len(a[0])))
    expected = _losses(tiny_model(cfg), batch)
    got = _losses(cached, batch)
    assert encoded == [1]  # only the missing image went through SAM
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-6)
