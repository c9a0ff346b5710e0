"""Config files and KEY VALUE overrides: every mistake is a ConfigError naming it and the fix."""
import os

import pytest
import torch

import vertspine  # noqa: F401  (first)
from vertspine.config import ConfigError, check_device, get_vertspine_cfg, load_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO_ROOT, "configs/quick_schedules/"
                                 "faster_rcnn_R_18_FPN_phantom_lesions_instant_test.yaml")


def test_overrides_are_applied():
    cfg = load_config(get_vertspine_cfg(), CONFIG, ["SOLVER.MAX_ITER", "3"])
    assert cfg.SOLVER.MAX_ITER == 3 and cfg.MODEL.DEVICE == "cpu"


@pytest.mark.parametrize("opts, message", [
    (["FOO.BAR", "1"], r"override: Non-existent key: FOO.BAR\. Fix the KEY VALUE pair"),
    (["SOLVER.MAX_ITER", "abc"], r"Type mismatch .* SOLVER.MAX_ITER\. Fix the KEY VALUE pair"),
    (["SOLVER.MAX_ITER"], r"'SOLVER.MAX_ITER' has no value \(flags such as --num-gpus go before"),
])
def test_bad_overrides_name_the_key_and_the_fix(opts, message):
    with pytest.raises(ConfigError, match=message):
        load_config(get_vertspine_cfg(), CONFIG, opts)


def test_bad_files_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"'nope.yaml' does not exist .*YAML file under configs"):
        load_config(get_vertspine_cfg(), "nope.yaml", [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  MAX_ITRE: 5\n")
    with pytest.raises(ConfigError,
                       match=r"bad.yaml: 'Non-existent config key: SOLVER.MAX_ITRE'\. Fix the key"):
        load_config(get_vertspine_cfg(), str(bad), [])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_a_cuda_device_on_a_machine_without_one_names_the_key():
    with pytest.raises(ConfigError, match=r"MODEL.DEVICE is 'cuda'.*add MODEL.DEVICE cpu"):
        load_config(get_vertspine_cfg(), CONFIG, ["MODEL.DEVICE", "cuda"])
    check_device("cpu")  # no error
