"""Shared fixtures: a tiny phantom dataset, helpers to run train_net.py in a child process and to
import the repository's scripts."""
import importlib.util
import os

import pytest

import vertspine  # noqa: F401  (first: makes detectron2 importable without compiled ops)
from preloaded_processes import run_script

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTANT_CONFIG = os.path.join(
    REPO_ROOT, "configs/quick_schedules/faster_rcnn_R_18_FPN_phantom_lesions_instant_test.yaml"
)


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory):
    """A phantom dataset of 8 train and 4 val radiographs, written once per test session.

    Returns:
        dict with ``root`` and the ``KEY VALUE`` overrides that register and use its lesion
        splits as ``tiny_lesions_train`` / ``tiny_lesions_val`` through DATASETS.COCO_JSON.
    """
    from vertspine.data.phantom import PhantomConfig, generate_phantom_dataset

    root = str(tmp_path_factory.mktemp("phantom"))
    generate_phantom_dataset(root, PhantomConfig(num_train=8, num_val=4, num_test=4, seed=3))
    entries = [
        [f"tiny_lesions_{split}", os.path.join(root, "annotations", f"lesions_{split}.json"),
         os.path.join(root, "images", split)]
        for split in ("train", "val")
    ]
    opts = [
        "DATASETS.COCO_JSON", repr(entries),
        "DATASETS.TRAIN", "('tiny_lesions_train',)",
        "DATASETS.TEST", "('tiny_lesions_val',)",
    ]
    return {"root": root, "opts": opts}


def load_script(relative_path: str, name: str):
    """The repository's script or tool ``relative_path`` (e.g. ``scripts/x.py``), imported as
    module ``name`` (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train_net(args, *, timeout=600, check=True):
    """Run ``train_net.py ARGS`` from the repository root in a child process, forked from a
    server that has imported torch and vertspine (``preloaded_processes``); returns
    CompletedProcess."""
    result = run_script(os.path.join(REPO_ROOT, "train_net.py"), args, cwd=REPO_ROOT,
                        timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"train_net.py {' '.join(args)} exited {result.returncode}:\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(autouse=True)
def _restore_vertspine_logger():
    """train_net.setup configures the "vertspine" logger (handlers, no propagation); undo it
    after each test so that later tests' caplog still sees vertspine's records."""
    import logging

    logger = logging.getLogger("vertspine")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])
