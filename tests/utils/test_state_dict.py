"""vertspine.utils.state_dict.read_state_dict: one reader for every checkpoint file."""
import os

import pytest
import torch
from torch import nn

from vertspine.utils.state_dict import CheckpointReadError, read_state_dict


def _state():
    torch.manual_seed(0)
    return nn.Linear(3, 2).state_dict()


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"model": sd, "iteration": 7},
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": {"module." + k: v for k, v in sd.items()}},
    lambda sd: {**sd, "input_resolution": 224, "context_length": 77},
])
def test_containers_and_prefixes_unwrap_to_the_same_tensors(tmp_path, wrap):
    expected = _state()
    path = str(tmp_path / "w.pth")
    torch.save(wrap(dict(expected)), path)
    state = read_state_dict(path)
    assert sorted(state) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value)
    assert sorted(read_state_dict(wrap(dict(expected)))) == sorted(expected)  # objects too


def test_torchscript_archive_gives_its_state_dict(tmp_path):
    module = nn.Linear(3, 2)
    path = str(tmp_path / "scripted.pt")
    torch.jit.save(torch.jit.script(module), path)
    state = read_state_dict(path)
    assert torch.equal(state["weight"], module.weight.detach())


def test_entry_is_required_when_named(tmp_path):
    path = str(tmp_path / "bare.pth")
    torch.save(_state(), path)
    with pytest.raises(CheckpointReadError, match=r"bare\.pth has no 'model' entry"):
        read_state_dict(path, entry="model")


def test_missing_file_names_it_with_the_hint(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match=r"nope\.pth does not exist\. Set MODEL\.WEIGHTS"):
        read_state_dict(path, missing_hint="Set MODEL.WEIGHTS.")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_unreadable_files_name_the_file(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match=r"bad\.pth is not a readable PyTorch checkpoint"):
        read_state_dict(str(path))


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointReadError, match=r"cut\.pth is not a readable PyTorch checkpoint"):
        read_state_dict(str(path))


def test_directory_and_tensorless_files_are_refused(tmp_path):
    with pytest.raises(CheckpointReadError, match="is a directory"):
        read_state_dict(str(tmp_path))
    torch.save({"iteration": 3, "note": "x"}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointReadError, match="holds no tensors"):
        read_state_dict(str(tmp_path / "meta.pth"))


class _Opaque:
    def __init__(self):
        self.weight = torch.ones(2)


def test_pickled_objects_need_trust_pickle(tmp_path):
    path = str(tmp_path / "pickled.pth")
    torch.save({"model": {"w": torch.ones(2)}, "extra": _Opaque()}, path)
    with pytest.raises(CheckpointReadError, match="weights_only=True.*trust_pickle=True"):
        read_state_dict(path)
    assert torch.equal(read_state_dict(path, trust_pickle=True)["w"], torch.ones(2))
    assert os.path.isfile(path)


@pytest.mark.parametrize("content, what", [
    (b"hello world\n", r"a text file beginning 'hello world'"),
    (bytes((i * 37 + 11) % 256 for i in range(4096)), r"4096 bytes of unrecognised data"),
    (b"PK\x03\x04" + b"\x00" * 200, r"a zip archive cut short"),
])
def test_unreadable_files_say_what_they_are_without_torch_advice(tmp_path, content, what):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError, match=what) as raised:
        read_state_dict(str(path))
    assert "weights_only" not in str(raised.value)


def test_old_protocol_pickles_are_not_judged_by_their_bytes(tmp_path):
    import pickle

    from vertspine.utils.state_dict import not_a_checkpoint

    for protocol in (0, 1, 2):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps({"blobs": {"conv1_w": [1.0, 2.0]}}, protocol=protocol))
        assert not_a_checkpoint(str(path)) is None, protocol
