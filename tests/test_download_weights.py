"""scripts/download_weights.py: the listing and the checksum check (no network used)."""
import hashlib
import re

import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/download_weights.py", "download_weights")


def test_list_prints_every_checkpoint_without_downloading(script, capsys, monkeypatch):
    monkeypatch.setattr(script.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    assert script.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("sam_vit_b", "sam_vit_l", "sam_vit_h", "clip_vit_b16", "clip_vit_l14", "clip_vit_l14_336"):
        assert re.search(rf"^{name}$", out, re.MULTILINE)
    assert "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth" in out
    assert "config: MODEL.VERTFOUND.CLIP.PRETRAINED (CLIP.MODEL_NAME ViT-L-14)" in out
    for weight in script.WEIGHTS.values():
        if "openaipublic" in weight.url:  # OpenAI's URLs carry the file's sha256
            assert weight.url.split("/")[-2] == weight.sha256
        assert re.fullmatch(r"[0-9a-f]{64}", weight.sha256)


def test_verify_sha256_on_a_local_file(script, tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"vertspine" * 1000)
    digest = hashlib.sha256(b"vertspine" * 1000).hexdigest()
    assert script.file_sha256(str(path)) == digest
    assert script.verify_sha256(str(path), digest)
    assert script.verify_sha256(str(path), digest.upper())
    assert not script.verify_sha256(str(path), "0" * 64)
    assert not script.verify_sha256(str(tmp_path / "absent.bin"), digest)
    with pytest.raises(ValueError, match="No known SHA-256"):
        script.verify_sha256(str(path), None)
