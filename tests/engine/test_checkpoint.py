"""Checkpoints: atomic writes, never non-finite weights, clear errors for files that are not
checkpoints or do not fit the model, file modes, stale temporary files."""
import logging
import os
import stat
from collections import OrderedDict

import pytest
import torch

from vertspine.engine.checkpoint import (
    AtomicDetectionCheckpointer,
    NonFiniteWeightsError,
    check_weights_file,
    load_evaluation_weights,
)
from vertspine.utils.state_dict import CheckpointReadError
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


def _unreadable_files(tmp_path):
    """(path, what the error must say) for files that are not checkpoints."""
    torch.save(torch.nn.Linear(3, 2).state_dict(), tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.pth").write_bytes(bytes((i * 37 + 11) % 256 for i in range(4096)))
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    (tmp_path / "folder.pth").mkdir()
    return [("truncated.pth", "a zip archive cut short"),
            ("random.pth", "4096 bytes of unrecognised data"),
            ("notes.pth", "a text file beginning 'these are not weights'"),
            ("folder.pth", "is a directory")]


def test_unreadable_weights_are_named_early_and_on_load(tmp_path):
    for name, what in _unreadable_files(tmp_path):
        path = str(tmp_path / name)
        with pytest.raises(CheckpointReadError, match=rf"MODEL.WEIGHTS .*{name}.*{what}") as early:
            check_weights_file(path, str(tmp_path / "out"), resume=False)
        if name == "folder.pth":
            continue
        checkpointer = AtomicDetectionCheckpointer(torch.nn.Linear(3, 2))
        with pytest.raises(CheckpointReadError, match=rf"{name} is not a readable .*{what}") as late:
            checkpointer.load(path)
        for error in (early.value, late.value):
            assert "weights_only" not in str(error) and "central directory" not in str(error)
        assert late.value.__cause__ is None  # torch's misleading advice is not in the traceback
    check_weights_file(str(tmp_path / "whole.pth"), str(tmp_path / "out"), resume=False)


def test_non_finite_weights_are_never_saved_and_the_error_names_the_last_good_one(tmp_path):
    model = torch.nn.Linear(3, 2)
    checkpointer = AtomicDetectionCheckpointer(model, save_dir=str(tmp_path))
    checkpointer.save("model_0000009", iteration=9)
    with torch.no_grad():
        model.bias[1] = float("nan")
    with pytest.raises(NonFiniteWeightsError,
                       match=r"Not saving .*model_0000019.pth: 1 tensors .*\(model.bias\)"
                             r"(.|\n)*last checkpoint, with finite weights, is .*model_0000009.pth"):
        checkpointer.save("model_0000019", iteration=19)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert checkpointer.get_checkpoint_file().endswith("model_0000009.pth")


def _cfg(output_dir, weights="", allow_partial=False):
    from vertspine.config import get_vertspine_cfg

    cfg = get_vertspine_cfg()
    cfg.OUTPUT_DIR, cfg.MODEL.WEIGHTS, cfg.TEST.ALLOW_PARTIAL_WEIGHTS = \
        str(output_dir), weights, allow_partial
    return cfg


def test_eval_resume_without_a_checkpoint_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"--eval-only needs weights: OUTPUT_DIR .* has no "
                                         r"last_checkpoint and MODEL.WEIGHTS is empty"):
        load_evaluation_weights(torch.nn.Linear(3, 2), _cfg(tmp_path), resume=True)


def _detector():
    return torch.nn.Sequential(OrderedDict(backbone=torch.nn.Linear(3, 3),
                                           head=torch.nn.Linear(3, 2)))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_weights_that_leave_parameters_random_are_refused_for_evaluation(tmp_path):
    classifier = str(tmp_path / "classifier.pth")
    torch.save({"model": {"fc.weight": torch.ones(5, 3), "head.bias": torch.zeros(2)}}, classifier)
    with pytest.raises(CheckpointReadError,
                       match=r"classifier.pth leaves 3 parameters and buffers of the model "
                             r"unloaded: backbone, head.weight\. .*TEST.ALLOW_PARTIAL_WEIGHTS True"):
        load_evaluation_weights(_detector(), _cfg(tmp_path, classifier), resume=False)
    model = _detector()
    load_evaluation_weights(model, _cfg(tmp_path, classifier, allow_partial=True), resume=False)
    assert torch.equal(model.head.bias, torch.zeros(2))
    complete = str(tmp_path / "complete.pth")
    torch.save({"model": _detector().state_dict()}, complete)
    load_evaluation_weights(_detector(), _cfg(tmp_path, complete), resume=False)


def test_training_from_partial_weights_names_what_stays_random(tmp_path):
    partial = str(tmp_path / "backbone.pth")
    torch.save({"model": {"backbone.weight": torch.ones(3, 3), "backbone.bias": torch.ones(3)}},
               partial)
    checkpointer = AtomicDetectionCheckpointer(_detector())
    records = _Records()
    checkpointer.logger.addHandler(records)
    try:
        checkpointer.load(partial)
    finally:
        checkpointer.logger.removeHandler(records)
    assert any("backbone.pth leaves 2 parameters and buffers of the model unloaded: head. They "
               "stay at their random initialisation." in m for m in records.messages)


def test_checkpoints_get_the_umask_mode_and_resume_removes_stale_temporaries(tmp_path):
    old = os.umask(0o027)
    try:
        checkpointer = AtomicDetectionCheckpointer(torch.nn.Linear(3, 2), save_dir=str(tmp_path))
        checkpointer.save("model_0000009", iteration=9)
    finally:
        os.umask(old)
    for name in ("model_0000009.pth", "last_checkpoint"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name
    stale = [tmp_path / ".model_0000019.pth.k2j4h1.tmp", tmp_path / ".last_checkpoint.x8a.tmp"]
    for path in stale:
        path.write_bytes(b"half a save")
    (tmp_path / "notes.tmp").write_text("not ours")
    assert checkpointer.remove_stale_temporary_files() == [str(p) for p in sorted(stale)]
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth", "notes.tmp"]
