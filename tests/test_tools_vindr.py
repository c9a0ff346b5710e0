"""tools/visualize_json_results.py on the tiny phantom; the instant RetinaNet config trained and
evaluated through train_net.py; scripts/benchmark_detection.py prints its two figures."""
import json
import os
import re
import subprocess
import sys

import cv2
import numpy as np

from conftest import REPO_ROOT, run_train_net

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import visualize_json_results as visualize  # noqa: E402

RETINANET_INSTANT = os.path.join(
    REPO_ROOT, "configs/quick_schedules/retinanet_R_18_FPN_phantom_lesions_instant_test.yaml")
HIGH = {"image_id": 1, "category_id": 1, "bbox": [20.0, 20.0, 60.0, 60.0], "score": 0.9}
LOW = {"image_id": 1, "category_id": 2, "bbox": [150.0, 150.0, 60.0, 60.0], "score": 0.1}
# the RetinaNet runs resize the 256 px phantom to 128 px: their checks do not depend on the size
AT_128_PX = ["INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MIN_SIZE_TEST", "128"]


def _visualize(tiny_phantom, tmp_path, predictions, threshold, tag):
    results = tmp_path / f"{tag}.json"
    results.write_text(json.dumps(predictions))
    root = tiny_phantom["root"]
    register = ["tiny_vis_val", os.path.join(root, "annotations", "lesions_val.json"),
                os.path.join(root, "images", "val")]
    out = tmp_path / tag
    written = visualize.main(["--input", str(results), "--dataset", "tiny_vis_val",
                              "--output", str(out), "--conf-threshold", str(threshold),
                              "--register", *register])
    return out, written


def test_visualize_json_results_draws_predictions_beside_ground_truth(tiny_phantom, tmp_path):
    out, written = _visualize(tiny_phantom, tmp_path, [HIGH, LOW], 0.25, "both")
    names = sorted(os.listdir(out))
    assert written == 4 and names == [f"val_{i:05d}.png" for i in range(4)]
    image = cv2.imread(os.path.join(tiny_phantom["root"], "images", "val", "val_00000.png"))
    drawing = cv2.imread(str(out / "val_00000.png"))
    h, w = image.shape[:2]
    assert drawing.shape == (h, 2 * w, 3)
    left = drawing[:, :w]
    high_only, _ = _visualize(tiny_phantom, tmp_path, [HIGH], 0.25, "high")
    # the prediction scoring 0.1 < 0.25 is not drawn: same pixels as without it
    assert np.array_equal(left, cv2.imread(str(high_only / "val_00000.png"))[:, :w])
    assert np.array_equal(left[140:220, 140:220], image[140:220, 140:220])  # untouched there
    assert not np.array_equal(left[20:80, 20:80], image[20:80, 20:80])  # HIGH is drawn
    lowered, _ = _visualize(tiny_phantom, tmp_path, [HIGH, LOW], 0.05, "lowered")
    assert not np.array_equal(left[150:210, 150:210],
                              cv2.imread(str(lowered / "val_00000.png"))[150:210, 150:210])


def test_instant_retinanet_trains_and_evaluates(tiny_phantom, tmp_path):
    run_train_net(["--config-file", RETINANET_INSTANT, *tiny_phantom["opts"], *AT_128_PX,
                   "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path)])
    assert os.path.isfile(tmp_path / "model_final.pth")
    with open(tmp_path / "inference" / "evaluation_results.json") as f:
        results = json.load(f)["results"]["bbox"]
    assert {"AP", "AP50", "AP75"} <= set(results)  # NaN this early: no score above 0.05 yet
    with open(tmp_path / "metrics.json") as f:
        losses = [json.loads(line) for line in f if "loss_cls" in line]
    assert [m["iteration"] for m in losses] == [0, 1]
    assert all(np.isfinite(m["loss_cls"]) and np.isfinite(m["loss_box_reg"]) for m in losses)


def test_benchmark_prints_both_figures(tiny_phantom):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "scripts", "benchmark_detection.py"),
         "--config-file", RETINANET_INSTANT, "--iters", "2", "--warmup", "1",
         *tiny_phantom["opts"], *AT_128_PX],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    train = re.search(r"training: ([0-9.]+) iterations/s", result.stdout)
    infer = re.search(r"inference: ([0-9.]+) images/s", result.stdout)
    assert train and infer and float(train.group(1)) > 0 and float(infer.group(1)) > 0
    assert "device: cpu" in result.stdout and "batch: 2" in result.stdout


def test_visualize_missing_input_is_named_with_the_fix(tmp_path):
    missing = str(tmp_path / "gone.json")
    try:
        visualize.main(["--input", missing, "--dataset", "x", "--output", str(tmp_path / "o")])
    except SystemExit as e:
        assert "gone.json' does not exist; give the coco_instances_results.json" in str(e)
    else:
        raise AssertionError("a missing --input must stop the tool")
