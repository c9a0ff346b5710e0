"""ImageClassifier through train_net.py: 2 training iterations on tiny ImageFolder data from the
phantom (registered with DATASETS.IMAGE_FOLDER), then --eval-only on the saved weights
reproduces the metrics with two processes (predictions gathered from both)."""
import json
import os

import pytest
import torch

from conftest import REPO_ROOT, run_train_net
from vertspine.data.builtin_classification import export_abnormal_image_folder
from vertspine.data.phantom import PhantomConfig, generate_phantom_dataset

INSTANT = os.path.join(REPO_ROOT, "configs/quick_schedules/image_classifier_instant_test.yaml")


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """96 px phantom, 8 train / 6 val images; seed 4 gives both classes in both splits
    (train 3 normal / 5 abnormal, val 3 / 3)."""
    root = str(tmp_path_factory.mktemp("cls_phantom"))
    generate_phantom_dataset(root, PhantomConfig(image_height=96, image_width=96, num_train=8,
                                                 num_val=6, num_test=0, seed=4))
    out = tmp_path_factory.mktemp("cls_folders")
    entries = []
    for split in ("train", "val"):
        export_abnormal_image_folder(os.path.join(root, "annotations", f"lesions_{split}.json"),
                                     os.path.join(root, "images", split), str(out / split))
        entries.append([f"tiny_cls_{split}", str(out / split), ["normal", "abnormal"]])
    return ["DATASETS.IMAGE_FOLDER", repr(entries), "DATASETS.TRAIN", "('tiny_cls_train',)",
            "DATASETS.TEST", "('tiny_cls_val',)"]


def _results(output_dir):
    with open(os.path.join(output_dir, "inference", "evaluation_results.json")) as f:
        return json.load(f)["results"]["classification"]


def test_instant_config_trains_then_eval_only_reproduces_metrics(tiny_folders, tmp_path):
    train_dir, eval_dir = str(tmp_path / "train"), str(tmp_path / "eval")
    run_train_net(["--config-file", INSTANT, *tiny_folders, "OUTPUT_DIR", train_dir])
    weights = os.path.join(train_dir, "model_final.pth")
    state = torch.load(weights, map_location="cpu", weights_only=False)["model"]
    assert list(state["head.layers.0.weight"].shape) == [16, 96]  # HIDDEN_DIMS [16]
    assert list(state["head.layers.2.weight"].shape) == [1, 16]

    run_train_net(["--config-file", INSTANT, "--eval-only", "--num-gpus", "2", *tiny_folders,
                   "MODEL.WEIGHTS", weights, "OUTPUT_DIR", eval_dir])  # 2 gloo processes
    trained, evaluated = _results(train_dir), _results(eval_dir)
    assert trained["num_images"] == 6.0 and trained["num_positive"] == 3.0
    assert 0.0 <= trained["threshold"] <= 1.0 and "sensitivity_thr_chosen_on_this_set" in trained
    assert evaluated == pytest.approx(trained, nan_ok=True)
    with open(os.path.join(eval_dir, "inference", "tiny_cls_val",
                           "classification_predictions.json")) as f:
        predictions = json.load(f)["predictions"]
    assert len(predictions) == 6 and all(0.0 <= p["probs"][0] <= 1.0 for p in predictions)
