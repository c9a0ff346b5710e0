"""A CT-like NIfTI volume goes reader -> volume dataset -> PatchLoader -> a toy 3D model, for 2
iterations through vertspine's Trainer; the model's forward asserts the values and spacing it
receives.

The volume (``tests/ct_volume.py``): int16 Hounsfield units in -1000..1500, a labelled block,
0.8 x 0.8 x 2.5 mm voxels, an LPS-like affine (reoriented to RAS by the loader). The CT window
-1000..1000 HU -> 0..1 must give, for every voxel of every patch, numpy's
``clip((HU + 1000) / 2000, 0, 1)`` of the voxel nibabel puts there (so -1000 HU -> 0, 0 HU -> 0.5,
1000 HU and above -> 1); every patch centre is on the label (positive draws only).
"""
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import META_ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from ct_volume import SPACING, canonical, locate, window, write_ct_volume
from vertspine.config import get_vertspine_cfg
from vertspine.data import register_volume_cases, unregister_dataset
from vertspine.engine import Trainer

ROI = (16, 16, 8)
IMS_PER_BATCH = 4


@META_ARCH_REGISTRY.register()
class ToyVolumeSegmentor(nn.Module):
    """Conv3d(1 -> 2 classes) and cross-entropy on ``sem_seg``; in training it checks every
    patch against :attr:`reference` ({image_id: (HU volume, label volume)}, RAS)."""

    reference = {}
    batches_seen = []

    def __init__(self, cfg):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, kernel_size=3, padding=1)

    def forward(self, batched_inputs):
        images = torch.stack([x["image"] for x in batched_inputs])
        logits = self.conv(images)
        if not self.training:
            return [{"sem_seg": logit} for logit in logits]
        assert len(batched_inputs) == IMS_PER_BATCH
        for x in batched_inputs:
            self._check_patch(x)
        self.batches_seen.append([x["image_id"] for x in batched_inputs])
        labels = torch.stack([x["sem_seg"] for x in batched_inputs])
        return {"loss_ce": F.cross_entropy(logits, labels)}

    def _check_patch(self, x):
        hu, label = self.reference[x["image_id"]]
        assert x["image"].dtype == torch.float32 and tuple(x["image"].shape) == (1, *ROI)
        assert x["sem_seg"].dtype == torch.int64 and tuple(x["sem_seg"].shape) == ROI
        assert x["spacing"] == pytest.approx(SPACING)
        values = x["image"][0].numpy()
        i, j, k = locate(values, window(hu))
        patch_hu = hu[i:i + ROI[0], j:j + ROI[1], k:k + ROI[2]]
        np.testing.assert_array_equal(values, window(patch_hu))  # the HU -> 0..1 mapping
        assert (patch_hu < 0).any() and np.all(values[patch_hu <= -1000] == 0.0)
        assert np.all(values[patch_hu >= 1000] == 1.0) and np.all(values[patch_hu == 0] == 0.5)
        np.testing.assert_array_equal(x["sem_seg"].numpy(),
                                      label[i:i + ROI[0], j:j + ROI[1], k:k + ROI[2]])
        assert int(x["sem_seg"][tuple(s // 2 for s in ROI)]) == 1  # centre on the label


@pytest.fixture
def ct_dataset(tmp_path):
    cases = [write_ct_volume(str(tmp_path), f"ct{i}", seed=i) for i in range(2)]
    register_volume_cases("_toy_ct_train", cases, class_names=["bone"])
    ToyVolumeSegmentor.reference = {
        f"ct{i}": (canonical(image)[0], canonical(label)[0]) for i, (image, label)
        in enumerate(cases)}
    ToyVolumeSegmentor.batches_seen = []
    yield "_toy_ct_train"
    unregister_dataset("_toy_ct_train")


def _cfg(dataset_name, output_dir):
    cfg = get_vertspine_cfg()
    cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.DEVICE = "ToyVolumeSegmentor", "cpu"
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (dataset_name,), ()
    cfg.INPUT.DATASET_MAPPER, cfg.DATALOADER.BUILDER = "VolumeMapper", "PatchLoader"
    cfg.DATALOADER.NUM_WORKERS = 0
    volume = cfg.INPUT.VOLUME
    volume.ROI_SIZE, volume.PATCHES_PER_VOLUME, volume.POS_NEG_RATIO = ROI, 2, (1.0, 0.0)
    volume.ORIENTATION, volume.INTENSITY.MODE = "RAS", "window"
    volume.INTENSITY.WINDOW, volume.INTENSITY.OUTPUT_RANGE = (-1000.0, 1000.0), (0.0, 1.0)
    cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR = IMS_PER_BATCH, 2, 0.01
    cfg.SOLVER.STEPS, cfg.SOLVER.CHECKPOINT_PERIOD = (), 1000
    cfg.SEED, cfg.TEST.EVAL_PERIOD, cfg.VERTSPINE.LOG_PERIOD = 3, 0, 1
    cfg.OUTPUT_DIR = str(output_dir)
    return cfg


def test_ct_volume_trains_two_iterations_through_the_patch_loader(ct_dataset, tmp_path):
    trainer = Trainer(_cfg(ct_dataset, tmp_path / "run"))
    trainer.train()
    assert trainer.iter == 2 and len(ToyVolumeSegmentor.batches_seen) == 2
    # 2 patches per visit: each batch holds two visits of 2 patches
    for batch in ToyVolumeSegmentor.batches_seen:
        assert batch[0] == batch[1] and batch[2] == batch[3]
    assert np.isfinite(trainer.storage.history("total_loss").latest())


def test_test_loader_gives_the_whole_preprocessed_volume(ct_dataset, tmp_path):
    cfg = _cfg(ct_dataset, tmp_path)
    (whole,) = next(iter(Trainer.build_test_loader(cfg, ct_dataset)))
    (with_loss_target,) = next(iter(Trainer.build_validation_loss_loader(cfg, ct_dataset)))
    hu, label = ToyVolumeSegmentor.reference[whole["image_id"]]
    for x in (whole, with_loss_target):
        assert tuple(x["image"].shape) == (1, 40, 36, 24) and x["spacing"] == pytest.approx(SPACING)
        np.testing.assert_array_equal(x["image"][0].numpy(), window(hu))
        np.testing.assert_array_equal(x["sem_seg"].numpy(), label)
    assert whole["affine"][0, 0] == pytest.approx(SPACING[0])  # RAS: x grows along axis 0
    assert DatasetCatalog.get(ct_dataset)[0]["spacing"] == pytest.approx(SPACING)
