"""VolumeMapper and the patch loader on CT-like NIfTI volumes, against nibabel/numpy references.

K patches per visit, positive/negative balance, determinism across worker counts, sharding
across ranks (the sampler is given the rank and world size: no processes are started).
"""
import itertools

import nibabel as nib
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from ct_volume import SPACING, canonical, locate, window, write_ct_volume
from vertspine.config import get_vertspine_cfg
from vertspine.data import VolumeMapper, register_volume_cases, unregister_dataset
from vertspine.data.loaders import (
    PatchStream,
    ShardedTrainingSampler,
    build_patch_train_loader,
    visit_seed,
)

ROI = (16, 16, 8)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """Records of 3 CT-like volumes, registered as a volume dataset (reader -> dataset)."""
    folder = str(tmp_path_factory.mktemp("ct"))
    cases = [write_ct_volume(folder, f"ct{i}", seed=i) for i in range(3)]
    register_volume_cases("_patch_loader_ct", cases, class_names=["bone"])
    yield DatasetCatalog.get("_patch_loader_ct")
    unregister_dataset("_patch_loader_ct")


def _cfg(intensity=(), **volume):
    """The default config with ROI and 3 patches; ``INPUT.VOLUME.<key>`` = value for each
    keyword, ``INPUT.VOLUME.INTENSITY.<key>`` for each (key, value) of ``intensity``."""
    cfg = get_vertspine_cfg()
    cfg.INPUT.VOLUME.ROI_SIZE = ROI
    cfg.INPUT.VOLUME.PATCHES_PER_VOLUME = 3
    cfg.INPUT.VOLUME.merge_from_list(list(itertools.chain(*volume.items())))
    cfg.INPUT.VOLUME.INTENSITY.merge_from_list(list(itertools.chain(*intensity)))
    return cfg


def _centre_label(patch):
    return int(patch["sem_seg"][tuple(s // 2 for s in ROI)])


def test_test_mapping_is_the_whole_volume_as_nibabel_and_numpy_compute_it(volumes):
    record = volumes[0]
    out = VolumeMapper(_cfg(), is_train=False)(record)
    hu, affine = canonical(record["file_name"])
    label, _ = canonical(record["label_file"])
    assert out["image"].dtype == torch.float32 and list(out["image"].shape) == [1, 40, 36, 24]
    np.testing.assert_allclose(out["image"][0].numpy(), window(hu), rtol=0, atol=1e-6)
    assert out["sem_seg"].dtype == torch.int64
    np.testing.assert_array_equal(out["sem_seg"].numpy(), label)
    np.testing.assert_allclose(out["affine"], affine, atol=1e-5)  # RAS: axes 0, 1 flipped
    assert out["spacing"] == pytest.approx(SPACING)
    assert out["image_id"] == "ct0" and out["label_file"] == record["label_file"]


def test_training_gives_k_windows_of_the_preprocessed_volume(volumes):
    record = volumes[1]
    patches = VolumeMapper(_cfg(), is_train=True).set_random_state(4)(record)
    reference = window(canonical(record["file_name"])[0])
    label = canonical(record["label_file"])[0]
    assert len(patches) == 3
    for patch in patches:
        assert set(patch) == {"image", "sem_seg", "spacing", "file_name", "image_id"}
        assert list(patch["image"].shape) == [1, *ROI] and patch["image"].dtype == torch.float32
        assert list(patch["sem_seg"].shape) == list(ROI) and patch["sem_seg"].dtype == torch.int64
        x, y, z = locate(patch["image"][0].numpy(), reference)
        np.testing.assert_array_equal(patch["sem_seg"].numpy(),
                                      label[x:x + ROI[0], y:y + ROI[1], z:z + ROI[2]])
        assert patch["spacing"] == pytest.approx(SPACING) and patch["image_id"] == "ct1"


@pytest.mark.parametrize("pos_neg, expected_positive", [((1.0, 0.0), 1.0), ((0.0, 1.0), 0.0),
                                                        ((3.0, 1.0), 0.75)])
def test_patch_centres_follow_the_pos_neg_ratio(volumes, pos_neg, expected_positive):
    mapper = VolumeMapper(_cfg(POS_NEG_RATIO=pos_neg, PATCHES_PER_VOLUME=8), is_train=True)
    centres = [_centre_label(p) for seed in range(30)
               for p in mapper.set_random_state(seed)(volumes[0])]
    assert np.mean(centres) == pytest.approx(expected_positive, abs=0.08)


def test_resampling_to_a_target_spacing(volumes):
    """At 2.4 mm in-plane every output voxel sits on an input voxel centre (world positions
    through the affines), so nearest labels and bilinear values are that voxel's exactly."""
    record = volumes[0]
    out = VolumeMapper(_cfg(TARGET_SPACING=(2.4, 2.4, 2.5)), is_train=False)(record)
    hu, affine_in = canonical(record["file_name"])
    label = canonical(record["label_file"])[0]
    # MONAI keeps the extent between the first and last voxel centres: 39 * 0.8 mm / 2.4 mm + 1
    # = 14, round(35 * 0.8 / 2.4 + 1) = 13
    assert list(out["image"].shape) == [1, 14, 13, 24]
    assert out["spacing"] == pytest.approx((2.4, 2.4, 2.5), abs=1e-5)
    grid = np.stack(np.meshgrid(*map(np.arange, out["sem_seg"].shape), indexing="ij"), -1)
    world = grid @ out["affine"][:3, :3].T + out["affine"][:3, 3]
    source = np.rint((world - affine_in[:3, 3]) @ np.linalg.inv(affine_in[:3, :3]).T).astype(int)
    inside = np.all(source < hu.shape, axis=-1)  # the last row of axis 1 lies past the volume
    source = tuple(source[inside].T)
    np.testing.assert_array_equal(out["sem_seg"].numpy()[inside], label[source])
    np.testing.assert_allclose(out["image"][0].numpy()[inside], window(hu)[source], atol=1e-5)
    assert int(out["sem_seg"].sum()) == 2 * 3 * 4  # voxels 18, 21 / 15, 18, 21 of the block


def test_percentile_scaling_matches_numpy(volumes):
    cfg = _cfg(intensity=[("MODE", "percentiles"), ("PERCENTILES", (1.0, 99.0))])
    out = VolumeMapper(cfg, is_train=False)(volumes[2])
    hu = canonical(volumes[2]["file_name"])[0].astype(np.float64)
    low, high = np.percentile(hu, [1.0, 99.0])
    expected = np.clip((hu - low) / (high - low), 0, 1)
    np.testing.assert_allclose(out["image"][0].numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("volume, intensity, message", [
    ({"ROI_SIZE": (16, 16)}, (), "ROI_SIZE"),
    ({"PATCHES_PER_VOLUME": 0}, (), "PATCHES_PER_VOLUME"),
    ({"POS_NEG_RATIO": (0.0, 0.0)}, (), "POS_NEG_RATIO"),
    ({"TARGET_SPACING": (1.0, 0.0, 1.0)}, (), "TARGET_SPACING"),
    ({}, [("MODE", "zscore")], "INTENSITY.MODE"),
    ({}, [("WINDOW", (1000.0, -1000.0))], "INTENSITY.WINDOW"),
])
def test_bad_settings_name_the_key(volume, intensity, message):
    with pytest.raises(ValueError, match=message):
        VolumeMapper(_cfg(intensity, **volume), is_train=True)


def _batches(records, *, count, num_workers=0, rank=0, world_size=1, seed=5, batch_size=3):
    mapper = VolumeMapper(_cfg(), is_train=True)
    loader = build_patch_train_loader(records, mapper, batch_size=batch_size, seed=seed,
                                      num_workers=num_workers, rank=rank, world_size=world_size)
    return list(itertools.islice(iter(loader), count))


def test_each_visit_gives_k_patches_in_sampler_order(volumes):
    batches = _batches(volumes, count=6)  # 3 patches per visit, 3 per batch: one visit a batch
    order = ShardedTrainingSampler(len(volumes), seed=5, rank=0, world_size=1)
    expected = [volumes[i]["image_id"] for i in itertools.islice(iter(order), 6)]
    assert [[p["image_id"] for p in b] for b in batches] == [[i] * 3 for i in expected]
    assert len({tuple(p["image"].flatten()[:8].tolist()) for p in batches[0]}) == 3


def test_same_seed_same_patches_with_0_or_2_workers(volumes):
    inline = _batches(volumes, count=4, batch_size=2)
    workers = _batches(volumes, count=4, batch_size=2, num_workers=2)
    other_seed = _batches(volumes, count=4, batch_size=2, seed=6)
    for a, b in zip(itertools.chain(*inline), itertools.chain(*workers)):
        assert a["image_id"] == b["image_id"]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["sem_seg"], b["sem_seg"])
    assert not all(torch.equal(a["image"], c["image"])
                   for a, c in zip(itertools.chain(*inline), itertools.chain(*other_seed)))


def test_two_ranks_draw_interleaved_shards_of_one_stream(volumes):
    whole = list(itertools.islice(iter(ShardedTrainingSampler(3, seed=5, rank=0, world_size=1)),
                                  12))
    shards = [list(itertools.islice(iter(ShardedTrainingSampler(3, seed=5, rank=r,
                                                                world_size=2)), 6))
              for r in (0, 1)]
    assert shards == [whole[0::2], whole[1::2]]
    rank1 = _batches(volumes, count=4, rank=1, world_size=2)
    assert [b[0]["image_id"] for b in rank1] == [volumes[i]["image_id"] for i in whole[1::2][:4]]
    assert visit_seed(5, 0, 0) != visit_seed(5, 1, 0)  # same position, own draws per rank
    with pytest.raises(ValueError, match="rank 2"):
        ShardedTrainingSampler(3, seed=5, rank=2, world_size=2)


def test_a_mapper_without_random_state_is_refused(volumes):
    sampler = ShardedTrainingSampler(3, seed=0, rank=0, world_size=1)
    with pytest.raises(TypeError, match="INPUT.DATASET_MAPPER 'VolumeMapper'"):
        PatchStream(volumes, lambda record: [record], sampler, seed=0, rank=0)


def test_spacing_follows_the_reorientation(volumes, tmp_path):
    """A volume stored slice axis first (spacing 2.5, 0.8, 0.8 in file order) reaches the model
    in RAS order with spacing (0.8, 0.8, 2.5), as nibabel reorients it."""
    image = nib.load(volumes[0]["file_name"])
    permuted = nib.Nifti1Image(np.asanyarray(image.dataobj).transpose(2, 0, 1),
                               image.affine[:, [2, 0, 1, 3]])
    path = str(tmp_path / "slices_first.nii.gz")
    nib.save(permuted, path)
    record = {"file_name": path, "image_id": "permuted"}
    out = VolumeMapper(_cfg(), is_train=False)(record)
    assert nib.load(path).header.get_zooms() == pytest.approx((2.5, 0.8, 0.8))
    assert out["spacing"] == pytest.approx(SPACING)
    np.testing.assert_allclose(out["image"][0].numpy(), window(canonical(path)[0]), atol=1e-6)
    assert "sem_seg" not in out  # no label_file: the whole volume only
