"""train_net.py, the detectron2 command line: overrides, --eval-only, --resume, 2 gloo processes.

The runs use the instant R-18 config on the tiny phantom at 128 px (seconds on a CPU).
"""
import json
import logging
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from conftest import INSTANT_CONFIG, REPO_ROOT, run_train_net
from preloaded_processes import start_script
from vertspine.config import ConfigError
from vertspine.engine.checkpoint import CheckpointReadError

sys.path.insert(0, REPO_ROOT)
import train_net  # noqa: E402


@pytest.fixture
def phantom_opts(tiny_phantom):
    """The tiny phantom's overrides, its 256 px radiographs resized to 128 px: the checks here
    (command line, checkpoints, resume, evaluation) do not depend on the size, and an R-18
    training iteration or inference costs 2-3 times less at 128 px."""
    return [*tiny_phantom["opts"], "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MIN_SIZE_TEST", "128"]


def _parse(*argv):
    return train_net.build_argument_parser().parse_args(["--config-file", INSTANT_CONFIG, *argv])


def test_dist_url_defaults_to_auto():
    assert _parse().dist_url == "auto"


def test_command_line_override_changes_config(tmp_path):
    cfg = train_net.setup(_parse("SOLVER.BASE_LR", "0.123", "SOLVER.OPTIMIZER", "ADAMW",
                                 "OUTPUT_DIR", str(tmp_path)))
    assert cfg.SOLVER.BASE_LR == pytest.approx(0.123)
    assert cfg.SOLVER.OPTIMIZER == "ADAMW"
    assert cfg.MODEL.RESNETS.DEPTH == 18  # from the file, through _BASE_
    with open(tmp_path / "config.yaml") as f:  # the dumped config carries the override
        assert "BASE_LR: 0.123" in f.read()


def test_unknown_config_key_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="Non-existent key: SOLVER.NOT_A_KEY. Fix the KEY VALUE"):
        train_net.setup(_parse("SOLVER.NOT_A_KEY", "1", "OUTPUT_DIR", str(tmp_path)))


def test_eval_only_without_weights_says_what_to_add(phantom_opts, tmp_path):
    args = _parse("--eval-only", *phantom_opts, "OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="MODEL.WEIGHTS"):
        train_net.main(args)


def _results(output_dir):
    with open(os.path.join(output_dir, "inference", "evaluation_results.json")) as f:
        return json.load(f)["results"]


def _predictions(output_dir):
    path = os.path.join(output_dir, "inference", "tiny_lesions_val", "coco_instances_results.json")
    with open(path) as f:
        return json.load(f)


def test_train_then_eval_only_reproduces_metrics_of_the_weight_average(phantom_opts, tmp_path):
    """Training evaluates the EMA average; --eval-only with MODEL_EMA evaluates the same saved
    average (same metrics, same predictions), and without it the raw weights."""
    train_dir = str(tmp_path / "train")
    ema = ["MODEL_EMA.ENABLED", "True", "MODEL_EMA.DECAY", "0.5"]
    run_train_net(["--config-file", INSTANT_CONFIG, *phantom_opts, *ema, "OUTPUT_DIR", train_dir])
    for name in ("model_final.pth", "metrics.json", "last_checkpoint", "log.txt"):
        assert os.path.isfile(os.path.join(train_dir, name)), name
    assert len([f for f in os.listdir(train_dir) if f.startswith("events.out.tfevents")]) == 1
    # VERTSPINE.LOG_PERIOD 1 in the instant config: every iteration reaches metrics.json
    assert _iterations_logged(train_dir) == list(range(6))
    final = torch.load(os.path.join(train_dir, "model_final.pth"), map_location="cpu",
                       weights_only=False)
    assert int(final["model_ema"]["n_averaged"]) == 6  # one update per iteration
    assert _distance(final["model"], {k: final["model_ema"]["module." + k]
                                      for k in final["model"]}) > 0

    def eval_only(output_dir, *opts):
        run_train_net(["--config-file", INSTANT_CONFIG, "--eval-only", *phantom_opts,
                       *opts, "MODEL.WEIGHTS", os.path.join(train_dir, "model_final.pth"),
                       "OUTPUT_DIR", output_dir])
        return _results(output_dir), _predictions(output_dir)

    trained = _results(train_dir), _predictions(train_dir)
    assert set(trained[0]["bbox"]) >= {"AP", "AP50", "AP75"} and len(trained[1]) > 0
    assert eval_only(str(tmp_path / "averaged"), *ema) == trained
    assert eval_only(str(tmp_path / "raw"))[1] != trained[1]


def _iterations_logged(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line)["iteration"] for line in f if '"total_loss"' in line]


def test_resume_after_kill_continues_at_next_iteration(phantom_opts, tmp_path):
    out = str(tmp_path)
    # 8 iterations are left after the second checkpoint: the kill lands long before the end
    args = ["--config-file", INSTANT_CONFIG, *phantom_opts, "SOLVER.MAX_ITER", "12",
            "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", out]
    process = start_script(os.path.join(REPO_ROOT, "train_net.py"), args, cwd=REPO_ROOT,
                           stdout_path=str(tmp_path / "killed.stdout"),
                           stderr_path=str(tmp_path / "killed.stderr"))
    # saved after 4 iterations; the kill waits for last_checkpoint to name it, since the file is
    # renamed into place before last_checkpoint is re-tagged (CI once killed between the two)
    checkpoint = "model_0000003.pth"
    deadline = time.time() + 300
    while (_last_checkpoint(out) != checkpoint and process.is_alive()
           and time.time() < deadline):
        time.sleep(0.1)
    process.kill()  # SIGKILL
    process.join()
    assert os.path.exists(os.path.join(out, checkpoint)), "the run ended before checkpoint 2"
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    last_iteration = torch.load(os.path.join(out, _last_checkpoint(out)), map_location="cpu",
                                weights_only=False)["iteration"]
    assert last_iteration >= 3
    stale = os.path.join(out, f".model_{last_iteration + 2:07d}.pth.k2j4h1.tmp")  # a cut save
    with open(stale, "wb") as f:
        f.write(b"half a checkpoint")

    result = run_train_net(["--resume", *args])
    log = result.stdout + result.stderr
    assert f"Starting training from iteration {last_iteration + 1}" in log
    final = torch.load(os.path.join(out, "model_final.pth"), map_location="cpu",
                       weights_only=False)
    assert final["iteration"] == 11
    # each iteration once: the lines the killed run wrote after its checkpoint were dropped
    assert _iterations_logged(out) == list(range(12))
    assert not os.path.exists(stale)


def _last_checkpoint(output_dir):
    """The file name ``output_dir/last_checkpoint`` names ('' before the first save)."""
    try:
        with open(os.path.join(output_dir, "last_checkpoint")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _distance(a, b):
    return torch.sqrt(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a)).item()


# Every anchor and proposal is used (no random subsampling, whose draws differ between one
# process and two), and no augmentation: one process with 2 images per batch and two processes
# with 1 image each then see the same data and the same losses.
_DETERMINISTIC = [
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "1000000", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "1000000",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "1",
    "SOLVER.BASE_LR", "0.01", "DATALOADER.NUM_WORKERS", "0",
]


def test_two_gloo_processes_train_like_one(phantom_opts, tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    # with a learning rate stepped on the validation AP: the second process, which holds no
    # evaluation results, follows the main process's decision
    base = ["--config-file", INSTANT_CONFIG, *phantom_opts, *_DETERMINISTIC,
            "TEST.EVAL_PERIOD", "2", "SOLVER.PLATEAU.METRIC", "bbox/AP50"]
    run_train_net(["--num-gpus", "1", *base, "OUTPUT_DIR", one])
    run_train_net(["--num-gpus", "2", *base, "OUTPUT_DIR", two])
    assert os.path.isfile(os.path.join(two, "log.txt.rank1")), "no second process ran"

    w_first = _weights(os.path.join(one, "model_0000000.pth"))
    w_one = _weights(os.path.join(one, "model_final.pth"))
    w_two = _weights(os.path.join(two, "model_final.pth"))
    moved = _distance(w_one, w_first)  # how far 3 optimizer steps moved the weights
    assert moved > 1e-3
    # Up to the mean-of-means of the ROI-head losses, two processes follow one process.
    assert _distance(w_two, w_one) < 0.05 * moved


def _all_finite(path):
    return all(bool(torch.isfinite(t).all()) for t in _weights(path).values()
               if t.is_floating_point())


def test_divergence_names_the_last_checkpoint_whose_weights_are_finite(tiny_phantom, tmp_path):
    """At 256 px: at 128 px the run's stderr did not name FloatingPointError."""
    out = str(tmp_path)
    result = run_train_net(["--config-file", INSTANT_CONFIG, *tiny_phantom["opts"],
                            "SOLVER.BASE_LR", "1e6", "SOLVER.CHECKPOINT_PERIOD", "1",
                            "OUTPUT_DIR", out], check=False)
    assert result.returncode != 0
    assert "FloatingPointError" in result.stderr and "Training diverged." in result.stderr
    with open(os.path.join(out, "last_checkpoint")) as f:
        last = os.path.join(out, f.read().strip())
    assert f"The last checkpoint, with finite weights, is {last}" in result.stderr
    for name in os.listdir(out):
        if name.endswith(".pth"):
            assert _all_finite(os.path.join(out, name)), name


def test_eval_only_refuses_another_models_weights(phantom_opts, tmp_path):
    """An image classifier's weights given to Faster R-CNN: an error naming what stays unloaded.
    (--eval-only --resume without a checkpoint is tested on load_evaluation_weights, which
    train_net calls, in tests/engine/test_checkpoint.py.)"""
    classifier = str(tmp_path / "classifier.pth")  # an image classifier's weights
    torch.save({"model": {"conv1.weight": torch.zeros(64, 3, 7, 7),
                          "fc.weight": torch.zeros(7, 512)}}, classifier)
    args = _parse("--eval-only", *phantom_opts, "MODEL.WEIGHTS", classifier,
                  "OUTPUT_DIR", str(tmp_path / "c"))
    with pytest.raises(CheckpointReadError) as raised:
        train_net.main(args)
    assert "classifier.pth leaves 98 parameters and buffers of the model unloaded: backbone, " \
           "proposal_generator, roi_heads." in str(raised.value)
    assert "TEST.ALLOW_PARTIAL_WEIGHTS True" in str(raised.value)


def test_vertspine_logger_writes_info_and_warnings_to_log_txt(tmp_path):
    train_net.setup(_parse("OUTPUT_DIR", str(tmp_path)))
    logger = logging.getLogger("vertspine.engine.some_module")
    logger.info("an info line of vertspine")
    logger.warning("a warning of vertspine")
    with open(tmp_path / "log.txt") as f:
        log = f.read()
    assert "vertspine.engine.some_module INFO: an info line of vertspine" in log
    assert "vertspine.engine.some_module WARNING: a warning of vertspine" in log


def test_make_phantom_train_passes_args_as_overrides():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(["make", "--no-print-directory", "-n", "phantom-train", "VENV=none",
                             "ARGS=SOLVER.MAX_ITER 20"],
                            cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip().endswith("SOLVER.MAX_ITER 20")


def test_resume_continues_exactly_as_the_uninterrupted_run(phantom_opts, tmp_path):
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    # SEED 42 (the instant config); evaluation and validation loss at the checkpoint's
    # iteration must not change the training's random numbers; the learning rate steps on the
    # validation AP (patience 0: lowered after the first evaluation that does not improve)
    args = ["--config-file", INSTANT_CONFIG, *phantom_opts, "SOLVER.MAX_ITER", "6",
            "SOLVER.CHECKPOINT_PERIOD", "2", "TEST.EVAL_PERIOD", "2",
            "TEST.VAL_LOSS_PERIOD", "2", "TEST.VAL_LOSS_NUM_BATCHES", "1",
            "SOLVER.PLATEAU.METRIC", "bbox/AP50", "SOLVER.PLATEAU.PATIENCE", "0"]
    result = run_train_net([*args, "OUTPUT_DIR", whole])
    assert "learning-rate scale 1 -> 0.5 (SOLVER.PLATEAU)" in result.stdout + result.stderr
    final = torch.load(os.path.join(whole, "model_final.pth"), map_location="cpu",
                       weights_only=False)
    assert final["trainer"]["hooks"]["ValidationPlateau"]["scale"] < 1
    # what a kill -9 right after the second checkpoint (iteration 3, saved after the
    # evaluation at iteration 4) leaves for --resume
    os.makedirs(resumed)
    shutil.copy(os.path.join(whole, "model_0000003.pth"), resumed)
    with open(os.path.join(resumed, "last_checkpoint"), "w") as f:
        f.write("model_0000003.pth")
    result = run_train_net(["--resume", *args, "OUTPUT_DIR", resumed])
    assert "Exact resume: drawing again the 4 batches already trained" in result.stdout
    expected = _weights(os.path.join(whole, "model_final.pth"))
    got = _weights(os.path.join(resumed, "model_final.pth"))
    assert max((got[k].double() - expected[k].double()).abs().max().item() for k in expected) < 1e-6
