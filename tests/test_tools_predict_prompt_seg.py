"""The predict/export tool checks (``tools_predict_prompt_seg_checks.py``) run in a child pytest
process: they load OpenVINO and ONNX Runtime engines into the process, and a later
``subprocess.run`` of the same pytest process (``test_tools_vindr``'s train_net run) then died of a
segmentation fault in the full suite (each file passed alone). A child process keeps those
libraries' threads out of the suite's process. The child is forked from the server that has
imported vertspine (``preloaded_processes``), so it does not import torch again."""
import os

import pytest

from conftest import REPO_ROOT
from preloaded_processes import run_script

CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "tools_predict_prompt_seg_checks.py")


def test_predict_and_export_tools_in_a_child_process():
    pytest_main = os.path.join(os.path.dirname(pytest.__file__), "__main__.py")
    result = run_script(pytest_main, ["-q", "-p", "no:cacheprovider", CHECKS], cwd=REPO_ROOT,
                        timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "no tests ran" not in result.stdout
