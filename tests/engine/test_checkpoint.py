"""Atomic checkpoint writes: a failure during a save leaves the previous files intact."""
import os

import pytest
import torch

from vertspine.engine.checkpoint import AtomicDetectionCheckpointer, check_weights_file
from vertspine.utils.file_io import atomic_write


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = str(tmp_path / "file.txt")
    with atomic_write(path, "w") as f:
        f.write("first")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half of the second")
            raise RuntimeError("killed during the write")
    with open(path) as f:
        assert f.read() == "first"
    assert os.listdir(tmp_path) == ["file.txt"]  # no temporary file left behind


class _FailingState(torch.nn.Module):
    def state_dict(self, *args, **kwargs):
        raise RuntimeError("interrupted while collecting the state")


def test_checkpointer_keeps_last_checkpoint_on_failed_save(tmp_path):
    model = torch.nn.Linear(3, 2)
    checkpointer = AtomicDetectionCheckpointer(model, save_dir=str(tmp_path))
    checkpointer.save("model_0000009", iteration=9)
    assert checkpointer.get_checkpoint_file().endswith("model_0000009.pth")

    with torch.no_grad():
        model.weight.fill_(7.0)
    # a save that dies while torch.save writes the data: simulate with an unpicklable payload
    with pytest.raises(Exception):
        checkpointer.save("model_final", iteration=19, broken=lambda: None)
    assert not os.path.exists(tmp_path / "model_final.pth")
    assert checkpointer.get_checkpoint_file().endswith("model_0000009.pth")

    reloaded = torch.nn.Linear(3, 2)
    loaded = AtomicDetectionCheckpointer(reloaded, save_dir=str(tmp_path)).resume_or_load("", resume=True)
    assert loaded["iteration"] == 9
    assert not torch.equal(reloaded.weight, model.weight)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]


def test_missing_weights_file_is_named_before_anything_runs(tmp_path):
    missing = str(tmp_path / "detector" / "model_final.pth")
    with pytest.raises(FileNotFoundError, match=r"MODEL.WEIGHTS .*detector/model_final.pth"):
        check_weights_file(missing, str(tmp_path / "out"), resume=False)
    check_weights_file("", str(tmp_path), resume=False)  # random init
    check_weights_file("detectron2://ImageNetPretrained/MSRA/R-50.pkl", str(tmp_path), False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "last_checkpoint").write_text("model_0000009.pth")
    check_weights_file(missing, str(tmp_path / "out"), resume=True)  # resume ignores WEIGHTS
    with pytest.raises(FileNotFoundError):
        check_weights_file(missing, str(tmp_path / "out"), resume=False)
