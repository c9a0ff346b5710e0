"""A family added from outside vertspine trains through train_net.py's code path.

``tests/plugins/toy_family.py`` registers a config node, class-count key, meta-architecture,
mapper, evaluator and datasets on import, without any vertspine file naming it. Each run is a
fresh process: import the plugin, then ``train_net.main`` with the parsed command line.
"""
import json
import os
import subprocess
import sys

from conftest import REPO_ROOT

PLUGINS = os.path.join(REPO_ROOT, "tests", "plugins")
_RUN = (
    "import sys, json; sys.path[:0] = [{plugins!r}, {repo!r}]\n"
    "import vertspine, toy_family, train_net\n"
    "args = train_net.build_argument_parser().parse_args(sys.argv[1:])\n"
    "train_net.main(args)\n"
    "print('SEEN', json.dumps(toy_family.SEEN_LEVELS))\n"
)


def _config(tmp_path, **model_toy):
    lines = ["MODEL:", "  META_ARCHITECTURE: ToyClassifier", "  DEVICE: cpu", "  TOY:"]
    lines += [f"    {key}: {value}" for key, value in {"IMAGE_SIZE": 4, **model_toy}.items()]
    lines += ["INPUT:", "  DATASET_MAPPER: ToyMapper",
              "DATASETS:", "  TRAIN: ('toy_train',)", "  TEST: ('toy_val',)",
              "DATALOADER:", "  NUM_WORKERS: 0", "  ASPECT_RATIO_GROUPING: False",
              "SOLVER:", "  IMS_PER_BATCH: 4", "  BASE_LR: 0.1", "  MAX_ITER: 2",
              "  CHECKPOINT_PERIOD: 100", "  WARMUP_ITERS: 0", "  STEPS: ()",
              "TEST:", "  EVAL_PERIOD: 0", "VERTSPINE:", "  LOG_PERIOD: 1", "SEED: 5"]
    path = tmp_path / "toy.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _run(tmp_path, config, *opts):
    code = _RUN.format(plugins=PLUGINS, repo=REPO_ROOT)
    command = [sys.executable, "-c", code, "--config-file", config,
               "OUTPUT_DIR", str(tmp_path / "out"), *opts]
    return subprocess.run(command, cwd=str(tmp_path), capture_output=True, text=True, timeout=300)


def test_toy_family_trains_two_iterations_through_train_net(tmp_path):
    result = _run(tmp_path, _config(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    with open(out / "metrics.json") as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    assert [m["iteration"] for m in metrics if "total_loss" in m] == [0, 1]  # one loss: total_loss
    seen = json.loads(result.stdout.split("SEEN", 1)[1])
    assert len(seen) == 2 * 4  # two iterations of IMS_PER_BATCH 4 records reached the model
    assert all(0.0 <= level <= 1.0 for level in seen)
    assert "TOY:" in (out / "config.yaml").read_text()  # the family's node is in the dump
    with open(out / "inference" / "evaluation_results.json") as f:
        results = json.load(f)["results"]
    assert results["toy"]["count"] == 16  # the family's evaluator ran on toy_val
    import torch

    state = torch.load(out / "model_final.pth", map_location="cpu", weights_only=False)
    assert sorted(state["model"]) == ["linear.bias", "linear.weight"]
    assert state["iteration"] == 1


def test_toy_family_class_count_key_is_checked(tmp_path):
    result = _run(tmp_path, _config(tmp_path, NUM_CLASSES=3))
    assert result.returncode != 0
    assert "MODEL.TOY.NUM_CLASSES" in result.stderr
    assert "has 2 classes" in result.stderr
