"""The vessel phantom (vertspine.data.phantom_vessels) and the volume datasets' bad-input checks."""
import gzip
import logging
import os

import nibabel as nib
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from scipy import ndimage
from skimage import measure

import vertspine  # noqa: F401  (makes detectron2 importable)
from test_image_label_datasets import names  # noqa: F401  (fixture: names unregistered after)
from vertspine.data import DatasetValidationError, ImageReadError, register_volume_folder
from vertspine.data.generated_folder import MANIFEST_NAME, ensure_generated_folder
from vertspine.data.phantom_vessels import (
    SHIFT_APPEARANCE,
    SHIFTED_PARAMETERS,
    TRAIN_APPEARANCE,
    Tube,
    VESSEL_DATASET_NAMES,
    VesselPhantomConfig,
    draw_appearance,
    generate_vessel_volume,
    rasterize_tubes,
    register_phantom_vessels,
)

SMALL = VesselPhantomConfig(num_train=2, num_val=1, num_test=1, num_shift_test=1,
                            num_shift_train=1, base_size=32, max_size=32,
                            anisotropic_fraction=1.0, oblique_fraction=1.0)
NEIGHBOURS_26 = np.ones((3, 3, 3))


def test_same_seed_same_volume_and_splits_differ():
    a, b = (generate_vessel_volume(SMALL, "train", 1) for _ in range(2))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert np.array_equal(a.affine, b.affine) and a.info == b.info
    other = generate_vessel_volume(SMALL, "val", 1)
    assert not np.array_equal(a.label, other.label)
    few_shot, held_out = (generate_vessel_volume(SMALL, split, 0)
                          for split in ("shift_train", "shift_test"))
    assert not np.array_equal(few_shot.label, held_out.label)  # the few-shot pool is not tested
    reseeded = generate_vessel_volume(VesselPhantomConfig(**{**SMALL.to_dict(), "seed": 1}),
                                      "train", 1)
    assert not np.array_equal(a.label, reseeded.label)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.9)])
def test_straight_tube_matches_scipy_distance(spacing):
    """Away from its end caps, a straight tube is the set of voxel centres within r of its axis:
    scipy's exact EDT from the axis voxels (with the spacing) gives the same mask."""
    shape, radius = (20, 16, 16), 2.6 * min(spacing)
    axis_mm = np.array([8, 8]) * spacing[1:]
    points = np.stack([np.linspace(0, 19 * spacing[0], 20), np.full(20, axis_mm[0]),
                       np.full(20, axis_mm[1])], axis=1)
    occupancy, label = rasterize_tubes([Tube(points, np.full(20, radius), 0)], shape, spacing)
    centre_line = np.ones(shape, bool)
    centre_line[:, 8, 8] = False
    expected = ndimage.distance_transform_edt(centre_line, sampling=spacing) <= radius
    assert np.array_equal(label[4:16], expected[4:16])
    assert label[4:16].sum(axis=(1, 2)).min() >= 9  # a real tube, not a voxel line
    assert np.all(occupancy[label] > 0.49) and np.all(occupancy[~label] < 0.51)


@pytest.mark.parametrize("index", range(3))
def test_generated_tree_is_one_tube_tree(index):
    cfg = VesselPhantomConfig(**{**SMALL.to_dict(), "base_size": 48, "max_size": 48,
                                 "loop_probability": 1.0})
    volume = generate_vessel_volume(cfg, "test", index)
    label, info = volume.label, volume.info
    assert label.dtype == np.uint8 and set(np.unique(label)) == {0, 1}
    assert ndimage.label(label, NEIGHBOURS_26)[1] == 1  # one 26-connected tree
    padded = np.pad(label, 1)  # Betti numbers as TopCoW/vesselFM compute them
    beta2 = ndimage.label(1 - padded)[1] - 1  # enclosed background (6-connected)
    beta1 = 1 + beta2 - measure.euler_number(padded, connectivity=3)
    assert (beta1, beta2) == (info["num_loops"], 0)  # one independent cycle per loop
    assert 0.002 < label.mean() < 0.08
    fine = min(volume.spacing)
    assert cfg.min_radius * fine == pytest.approx(info["min_radius_mm"])
    assert cfg.root_radius[0] * fine <= info["root_radius_mm"] <= cfg.root_radius[1] * fine
    assert info["num_branches"] >= 3 and 1 <= info["num_loops"] <= cfg.max_loops  # 2 tried
    spacing = np.asarray(volume.spacing)
    assert spacing.max() / spacing.min() <= cfg.max_anisotropy + 1e-9
    np.testing.assert_allclose(np.linalg.norm(volume.affine[:3, :3], axis=0), spacing)


def test_shift_domain_never_used_in_training():
    for name in SHIFTED_PARAMETERS:
        train, shift = getattr(TRAIN_APPEARANCE, name), getattr(SHIFT_APPEARANCE, name)
        if isinstance(train, tuple) and isinstance(train[0], float):
            assert train[1] < shift[0] or shift[1] < train[0], name
        elif isinstance(train, tuple):
            assert not set(train) & set(shift), name
        else:
            assert train != shift, name
    shared = set(TRAIN_APPEARANCE.to_dict()) - set(SHIFTED_PARAMETERS) - {"name"}
    assert shared == {"background", "texture_sigma", "max_blobs", "blob_contrast"}
    assert all(getattr(TRAIN_APPEARANCE, n) == getattr(SHIFT_APPEARANCE, n) for n in shared)
    rng = np.random.default_rng(0)
    drawn = {d.name: [draw_appearance(d, rng) for _ in range(200)]
             for d in (TRAIN_APPEARANCE, SHIFT_APPEARANCE)}
    for key in ("contrast", "texture_amplitude", "blur", "bias", "noise", "gain", "offset",
                "noise_type", "dtype"):
        assert not {a[key] for a in drawn["train"]} & {a[key] for a in drawn["shift"]}, key
    inverted = {d: np.mean([a["inverted"] for a in drawn[d]]) for d in drawn}
    assert inverted["train"] < 0.4 < 0.6 < inverted["shift"]
    shift = generate_vessel_volume(SMALL, "shift_test", 0)
    assert shift.image.dtype == np.int16 and shift.info["appearance"]["domain"] == "shift"


@pytest.fixture
def vessel_root(tmp_path):
    """The vessel datasets registered on a tiny config under tmp_path; default root after."""
    register_phantom_vessels(str(tmp_path / "vessels"), SMALL)
    yield tmp_path / "vessels"
    register_phantom_vessels()


def test_registration_is_lazy_per_split_and_keeps_geometry(vessel_root, caplog):
    assert not vessel_root.exists()  # nothing written at registration
    with caplog.at_level(logging.INFO, logger="vertspine.data.phantom_vessels.writer"):
        records = DatasetCatalog.get("phantom_vessels_train")
    assert "Generating the vessel phantom split 'train' (2 volumes)" in caplog.text
    assert sorted(os.listdir(vessel_root)) == ["train"]  # only the split asked for
    assert [r["image_id"] for r in records] == ["vessel_train_000", "vessel_train_001"]
    metadata = MetadataCatalog.get("phantom_vessels_train")
    assert metadata.evaluator_type == "vessel" and metadata.thing_classes == ["vessel"]
    assert [MetadataCatalog.get(f"phantom_vessels_{s}").appearance_domain for s in
            ("val", "test", "shift_test", "shift_train")] == ["train", "train", "shift", "shift"]
    for index, record in enumerate(records):
        volume = generate_vessel_volume(SMALL, "train", index)
        image, label = nib.load(record["file_name"]), nib.load(record["label_file"])
        np.testing.assert_allclose(image.header.get_zooms(), volume.spacing, rtol=1e-6)
        np.testing.assert_allclose(image.affine, volume.affine, atol=1e-5)
        np.testing.assert_allclose(label.affine, image.affine, atol=1e-6)
        assert max(volume.spacing) / min(volume.spacing) > 1.1  # anisotropic
        assert np.abs(volume.affine[:3, :3] / volume.spacing - np.eye(3)).max() > 0.05  # oblique
        assert np.array_equal(np.asanyarray(label.dataobj), volume.label)
        assert np.array_equal(np.asanyarray(image.dataobj), volume.image)
        np.testing.assert_allclose(record["spacing"], volume.spacing, rtol=1e-6)
    caplog.clear()
    stamp = os.path.getmtime(vessel_root / "train" / MANIFEST_NAME)
    with caplog.at_level(logging.INFO, logger="vertspine.data.phantom_vessels.writer"):
        assert len(DatasetCatalog.get("phantom_vessels_train")) == 2
    assert "Generating" not in caplog.text
    assert os.path.getmtime(vessel_root / "train" / MANIFEST_NAME) == stamp
    register_phantom_vessels(str(vessel_root), VesselPhantomConfig(**{**SMALL.to_dict(),
                                                                      "num_train": 1}))
    assert len(DatasetCatalog.get("phantom_vessels_train")) == 1  # stale split regenerated
    register_phantom_vessels(str(vessel_root), VesselPhantomConfig(**{**SMALL.to_dict(),
                                                                      "num_train": 1,
                                                                      "num_test": 3}))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vertspine.data.phantom_vessels.writer"):
        assert len(DatasetCatalog.get("phantom_vessels_train")) == 1
    assert "Generating" not in caplog.text  # another split's count leaves train as it is
    assert set(VESSEL_DATASET_NAMES) <= set(DatasetCatalog.list())


def test_generated_folder_survives_a_concurrent_writer(tmp_path):
    folder, manifest = str(tmp_path / "data"), {"version": 1}

    def write(staging):
        with open(os.path.join(staging, "a.txt"), "w") as f:
            f.write("a")

    def race(staging):  # another process publishes the same content while this one writes
        assert ensure_generated_folder(folder, manifest, write)
        write(staging)

    assert ensure_generated_folder(folder, manifest, race)
    assert sorted(os.listdir(tmp_path)) == ["data"]  # no staging folder left
    assert sorted(os.listdir(folder)) == ["a.txt", MANIFEST_NAME]
    assert not ensure_generated_folder(folder, manifest, race)  # cached: nothing runs
    os.remove(os.path.join(folder, MANIFEST_NAME))
    with pytest.raises(FileExistsError, match="data exists, is not empty and holds no manifest"):
        ensure_generated_folder(folder, manifest, write)


AFFINE = np.diag([0.5, 0.5, 1.2, 1.0])


def _tube_case(root, image=None, label=None, affine=AFFINE):
    """A 12x12x8 volume folder case 'c1': a bright tube and its label (overridable)."""
    tube = np.zeros((12, 12, 8), np.uint8)
    tube[5:7, 5:7, :] = 1
    for folder, array in (("images", tube * 100.0 + 10.0 if image is None else image),
                          ("labels", tube if label is None else label)):
        os.makedirs(root / folder, exist_ok=True)
        nib.save(nib.Nifti1Image(array, affine), str(root / folder / "c1.nii.gz"))
    return str(root / "images"), str(root / "labels")


def _truncate(path):
    raw = gzip.decompress(open(path, "rb").read())
    open(path, "wb").write(gzip.compress(raw[:-50]))


BAD_INPUTS = {  # case: (image, label, error, message)
    "label_shape": (None, np.zeros((12, 12, 7), np.uint8), DatasetValidationError,
                    r"labels/c1.nii.gz has shape \(12, 12, 7\) but its image .*images/c1.nii.gz "
                    r"has shape \(12, 12, 8\).*resample"),
    "2d_image": (np.ones((12, 12), np.float32), None, DatasetValidationError,
                 r"Dataset 'bad_2d_image', case 'c1': .*images/c1.nii.gz is a 2D image of shape "
                 r"\(12, 12\), not a 3D volume.*\(H, W, 1\)"),
    "non_finite": (np.full((12, 12, 8), np.nan, np.float32), None, DatasetValidationError,
                   r"images/c1.nii.gz: 1152 NaN or infinite voxels; fix the file"),
    "all_zero": (np.zeros((12, 12, 8), np.float32), None, DatasetValidationError,
                 r"images/c1.nii.gz: every voxel is 0.0 .*re-export the image or remove the case"),
    "truncated": ("truncate", None, ImageReadError,
                  r"(?s)Dataset 'bad_truncated', case 'c1': .*images/c1.nii.gz: not a readable "
                  r"NIfTI file .*truncated or corrupt, re-export or re-copy it"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_volume_inputs_are_named_errors(tmp_path, names, case):
    image, label, error, message = BAD_INPUTS[case]
    image_dir, label_dir = _tube_case(tmp_path, None if isinstance(image, str) else image, label)
    if isinstance(image, str):
        _truncate(os.path.join(image_dir, "c1.nii.gz"))
    names.append(f"bad_{case}")
    register_volume_folder(f"bad_{case}", image_dir, label_dir, class_names=["vessel"])
    with pytest.raises(error, match=message):
        DatasetCatalog.get(f"bad_{case}")


def test_all_zero_label_is_a_reported_skip(tmp_path, names, caplog):
    image_dir, label_dir = _tube_case(tmp_path, label=np.zeros((12, 12, 8), np.uint8))
    names.append("zero_label")
    register_volume_folder("zero_label", image_dir, label_dir, class_names=["vessel"])
    with caplog.at_level(logging.WARNING, logger="vertspine.data.volume_validation"):
        assert DatasetCatalog.get("zero_label") == []
    assert "1 of 1 labels have no foreground, e.g. ['c1']; skipped" in caplog.text
