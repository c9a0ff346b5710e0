"""Sparse R-CNN through train_net.py: the instant config trains, evaluates and reloads."""
import json
import os

import torch

from conftest import REPO_ROOT, run_train_net

INSTANT = os.path.join(
    REPO_ROOT, "configs/quick_schedules/sparse_rcnn_R_18_FPN_phantom_lesions_instant_test.yaml")


def _results(output_dir):
    with open(os.path.join(output_dir, "inference", "evaluation_results.json")) as f:
        return json.load(f)["results"]


def test_instant_config_trains_then_eval_only_reproduces_metrics(tiny_phantom, tmp_path):
    train_dir, eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
    # 2 steps at 128 px: the checks below hold at any number of steps and input size
    opts = [*tiny_phantom["opts"], "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MIN_SIZE_TEST", "128"]
    run_train_net(["--config-file", INSTANT, *opts, "SOLVER.MAX_ITER", "2",
                   "OUTPUT_DIR", train_dir])
    weights = os.path.join(train_dir, "model_final.pth")
    state = torch.load(weights, map_location="cpu", weights_only=False)["model"]
    assert list(state["init_proposal_boxes.weight"].shape) == [20, 4]
    assert "head.head_series.1.inst_interact.dynamic_layer.weight" in state

    run_train_net(["--config-file", INSTANT, "--eval-only", *opts,
                   "MODEL.WEIGHTS", weights, "OUTPUT_DIR", eval_dir])
    trained, evaluated = _results(train_dir), _results(eval_dir)
    assert set(trained["bbox"]) >= {"AP", "AP50", "AP75"}
    assert evaluated == trained
