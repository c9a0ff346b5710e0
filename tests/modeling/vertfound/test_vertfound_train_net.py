"""VertFound through train_net.py: the instant config trains (in one and in two CPU processes),
evaluates, and --eval-only of the saved weights reproduces the metrics. It uses the instant
config's own datasets, phantom_vertebrae_{train,val}, whose evaluator is "vertebra_level" (IDR/IRA); the tiny fixture's splits would get COCO AP."""
import json
import os

import pytest
import torch

from conftest import run_train_net
from vertfound_test_utils import INSTANT


def _results(output_dir):
    with open(os.path.join(output_dir, "inference", "evaluation_results.json")) as f:
        return json.load(f)["results"]


def test_instant_config_trains_then_eval_only_reproduces_metrics_of_the_average(tmp_path):
    """With MODEL_EMA the in-training evaluation of the average equals --eval-only of the saved
    average (its CLIP text mask and token ids were NaN / truncated by torch's EMA: IDR 0)."""
    train_dir, eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
    run_train_net(["--config-file", INSTANT, "MODEL_EMA.ENABLED", "True", "OUTPUT_DIR", train_dir])
    weights = os.path.join(train_dir, "model_final.pth")
    state = torch.load(weights, map_location="cpu", weights_only=False)["model"]
    assert list(state["fusion.sam_proj.weight"].shape) == [32, 32]  # tiny SAM -> tiny CLIP width
    assert "sam.mask_decoder.mask_tokens.weight" in state and "clip.visual.conv1.weight" in state

    run_train_net(["--config-file", INSTANT, "--eval-only", "MODEL.WEIGHTS", weights,
                   "MODEL_EMA.ENABLED", "True", "OUTPUT_DIR", eval_dir])
    trained, evaluated = _results(train_dir), _results(eval_dir)
    assert evaluated == trained
    metrics = evaluated["vertebra_level"]
    assert metrics["matched"] == 100.0 and metrics["MAE"] == metrics["MAE"]  # not NaN
    assert 0.0 <= metrics["IDR"] <= 100.0 and 0.0 <= metrics["IRA"] <= 100.0


def test_instant_config_in_two_cpu_processes_then_eval_only_in_one(tmp_path):
    """The raw weights (no EMA): --eval-only in one process reproduces the metrics that the two
    training processes gathered."""
    out = str(tmp_path / "ddp")
    run_train_net(["--config-file", INSTANT, "--num-gpus", "2",
                   "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "1", "OUTPUT_DIR", out])
    assert os.path.isfile(os.path.join(out, "log.txt.rank1")), "no second process ran"
    first = torch.load(os.path.join(out, "model_0000000.pth"), weights_only=False)["model"]
    final = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)["model"]
    moved = (final["fusion.sam_proj.weight"] - first["fusion.sam_proj.weight"]).abs().max()
    assert 0 < moved < 1  # two optimizer steps on the gradients both processes agreed on
    trained = _results(out)  # evaluation ran and gathered across the two processes
    eval_dir = str(tmp_path / "eval")
    run_train_net(["--config-file", INSTANT, "--eval-only", "OUTPUT_DIR", eval_dir,
                   "MODEL.WEIGHTS", os.path.join(out, "model_final.pth")])
    assert trained["vertebra_level"]["matched"] == 100.0
    assert _results(eval_dir)["vertebra_level"] == pytest.approx(trained["vertebra_level"],
                                                                 nan_ok=True)
