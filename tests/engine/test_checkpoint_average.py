"""Checkpoint averaging: the tensor-wise mean, layout checks naming both files, the tool."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT, load_script
from vertspine.engine.checkpoint_average import average_checkpoints


def _save(path, **tensors):
    torch.save({"model": tensors, "iteration": 9}, path)
    return str(path)


def test_mean_of_floats_last_of_integers_dtypes_kept(tmp_path):
    paths = [
        _save(tmp_path / "a.pth", w=torch.tensor([1.0, 2.0]), h=torch.tensor([1.0], dtype=torch.float16),
              n=torch.tensor(3)),
        _save(tmp_path / "b.pth", w=torch.tensor([2.0, 4.0]), h=torch.tensor([2.0], dtype=torch.float16),
              n=torch.tensor(5)),
        _save(tmp_path / "c.pth", w=torch.tensor([6.0, 0.0]), h=torch.tensor([6.0], dtype=torch.float16),
              n=torch.tensor(8)),
    ]
    averaged = average_checkpoints(paths)
    assert torch.equal(averaged["w"], torch.tensor([3.0, 2.0]))
    assert averaged["h"].dtype == torch.float16 and averaged["h"].item() == 3.0
    assert averaged["n"].item() == 8


def test_mean_matches_torch_swa_utils_on_a_model(tmp_path):
    """Same numbers as torch's AveragedModel (uniform average) over the same weights."""
    models = [torch.nn.Linear(4, 3) for _ in range(3)]
    paths = [_save(tmp_path / f"{i}.pth", **m.state_dict()) for i, m in enumerate(models)]
    reference = torch.optim.swa_utils.AveragedModel(models[0])
    for m in models:
        reference.update_parameters(m)
    averaged = average_checkpoints(paths)
    for name, value in reference.module.state_dict().items():
        assert torch.allclose(averaged[name], value, atol=1e-7), name


def test_layout_errors_name_the_files(tmp_path):
    a = _save(tmp_path / "a.pth", w=torch.zeros(2))
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([a])
    other_shape = _save(tmp_path / "b.pth", w=torch.zeros(3))
    with pytest.raises(ValueError, match=r"'w' has shape \(3,\) in .*b.pth.* but \(2,\) in .*a.pth"):
        average_checkpoints([a, other_shape])
    other_keys = _save(tmp_path / "c.pth", v=torch.zeros(2))
    with pytest.raises(ValueError, match="c.pth.*a.pth.*different parameters"):
        average_checkpoints([a, other_keys])
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        average_checkpoints([a, str(tmp_path / "missing.pth")])
    (tmp_path / "truncated.pth").write_bytes(open(a, "rb").read()[:20])
    with pytest.raises(ValueError, match="truncated.pth is not a readable PyTorch checkpoint"):
        average_checkpoints([a, str(tmp_path / "truncated.pth")])
    torch.save({"state_dict": {}}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="plain.pth.*no 'model' entry"):
        average_checkpoints([a, str(tmp_path / "plain.pth")])
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pth")  # weights, but no training checkpoint
    with pytest.raises(ValueError, match=r"bare.pth has no 'model' entry \(it holds \['w'\]\)"):
        average_checkpoints([a, str(tmp_path / "bare.pth")])


def test_tool_writes_a_loadable_average(tmp_path):
    a = _save(tmp_path / "a.pth", w=torch.tensor([1.0]))
    b = _save(tmp_path / "b.pth", w=torch.tensor([3.0]))
    out = str(tmp_path / "avg" / "model_average.pth")
    subprocess.run([sys.executable, os.path.join(REPO_ROOT, "tools", "average_checkpoints.py"),
                    "--inputs", a, b, "--output", out], check=True, cwd=REPO_ROOT)
    written = torch.load(out, map_location="cpu", weights_only=False)
    assert torch.equal(written["model"]["w"], torch.tensor([2.0]))
    assert written["averaged_from"] == [a, b]


def test_tool_refuses_a_non_finite_input_naming_file_and_tensor(tmp_path):
    tool = load_script("tools/average_checkpoints.py", "average_checkpoints_tool")
    good = _save(tmp_path / "good.pth", w=torch.tensor([1.0]), b=torch.tensor([0.0]))
    diverged = _save(tmp_path / "diverged.pth", w=torch.tensor([float("nan")]),
                     b=torch.tensor([float("inf")]))
    out = tmp_path / "avg.pth"
    with pytest.raises(ValueError, match=r"diverged.pth': tensor 'w' holds NaN or infinite values "
                                         r"\(2 such tensors: \['w', 'b'\]\)"):
        tool.main(["--inputs", good, diverged, "--output", str(out)])
    assert not out.exists()
