"""The vessel instant config end to end: two 16^3 NIfTI tube volumes written to tmp, one training
step through the Trainer (PatchLoader, VolumeMapper, Dice + CE + soft clDice), then the
Trainer's final evaluation pass with the "sem_seg_dice" evaluator, whose Dice equals one computed
here from the model's own predictions."""
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.data import register_volume_cases, unregister_dataset
from vertspine.engine import Trainer

INSTANT = os.path.join(REPO_ROOT, "configs", "quick_schedules", "dynunet_vessel_instant_test.yaml")
NAME = "_vessel_instant_cases"


def _write_tube(folder, name, seed):
    """A noisy bright tube (radius 2.5 voxels) along a random axis in a 16^3 volume, spacing
    0.5 x 0.5 x 1.0 mm; returns (image path, label path)."""
    rng = np.random.default_rng(seed)
    grid = np.indices((16, 16, 16)).astype(float)
    axis = int(rng.integers(3))
    others = [a for a in range(3) if a != axis]
    centre = rng.uniform(6, 10, 2)
    label = (np.hypot(grid[others[0]] - centre[0], grid[others[1]] - centre[1]) <= 2.5)
    image = (100.0 + 300.0 * label + rng.normal(0, 20, label.shape)).astype(np.float32)
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    paths = (os.path.join(folder, f"{name}.nii.gz"), os.path.join(folder, f"{name}_seg.nii.gz"))
    nib.save(nib.Nifti1Image(image, affine), paths[0])
    nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), paths[1])
    return paths


@pytest.fixture
def tubes(tmp_path):
    register_volume_cases(NAME, [_write_tube(str(tmp_path), f"tube{i}", i) for i in range(2)],
                          class_names=["vessel"])
    yield NAME
    unregister_dataset(NAME)


def test_one_step_with_cldice_then_evaluation(tubes, tmp_path):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(INSTANT)
    cfg.merge_from_list(["DATASETS.TRAIN", (tubes,), "DATASETS.TEST", (tubes,),
                         "SOLVER.MAX_ITER", 1, "SEED", 0, "OUTPUT_DIR", str(tmp_path / "run")])
    trainer = Trainer(cfg)
    trainer.train()
    history = trainer.storage.history
    assert trainer.iter == 1
    losses = {name: history(name).latest() for name in ("loss_ce", "loss_dice", "loss_cldice")}
    assert all(np.isfinite(value) and value > 0 for value in losses.values())
    assert losses["loss_cldice"] <= cfg.MODEL.SEGMENTOR.CLDICE_WEIGHT  # weight * [0, 1]

    model = trainer.model.eval()
    evaluated = history("sem_seg/Dice").latest()  # the final evaluation after training
    expected = []
    with torch.no_grad():
        for (x,) in Trainer.build_test_loader(cfg, tubes):
            probability = model([x])[0]["sem_seg"]
            assert tuple(probability.shape) == (2, 16, 16, 16)
            prediction, truth = probability[1] > 0.5, x["sem_seg"] == 1
            overlap = float((prediction & truth).sum())
            expected.append(2 * overlap / (float(prediction.sum()) + float(truth.sum())))
    assert evaluated == pytest.approx(100 * np.mean(expected), abs=1e-4)
