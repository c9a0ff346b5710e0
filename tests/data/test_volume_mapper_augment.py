"""INPUT.VOLUME.AUGMENT: training patches transformed as vesselFM's fine-tuning does, image and
label alike, reproducibly per visit seed; bad settings name their key."""
import nibabel as nib
import numpy as np
import pytest

from vertspine.data.volume_mapper import VolumeMapper, build_patch_augmentation

SETTINGS = dict(roi_size=(16, 16, 16), num_patches=2, pos_neg=(1.0, 0.0), axcodes="",
                target_spacing=(), intensity_mode="none", intensity_range=(0.0, 1.0),
                output_range=(0.0, 1.0), clip=False)
GEOMETRIC = dict(prob=1.0, flip_axes=(0, 1), zoom=(1.1, 1.3), shear=0.3)


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """A 24^3 volume whose image is its label (a tube along z and a block), written as NIfTI."""
    folder = tmp_path_factory.mktemp("augment")
    label = np.zeros((24, 24, 24), np.float32)
    label[8:13, 8:13, :] = 1
    label[15:21, 3:7, 4:12] = 1
    for name, array in (("image", label), ("label", label)):
        nib.save(nib.Nifti1Image(array, np.diag([0.8, 0.8, 2.0, 1.0])), folder / f"{name}.nii.gz")
    return {"file_name": str(folder / "image.nii.gz"), "label_file": str(folder / "label.nii.gz"),
            "image_id": "case"}


def patches(record, seed, **augment):
    mapper = VolumeMapper(is_train=True, **SETTINGS, augment=augment or None)
    return mapper.set_random_state(seed)(record)


def test_geometric_transforms_move_image_and_label_together(record):
    plain, moved = patches(record, 3), patches(record, 3, **GEOMETRIC)
    for before, after in zip(plain, moved):
        assert after["image"].shape == (1, 16, 16, 16) and after["sem_seg"].shape == (16, 16, 16)
        assert set(after["sem_seg"].unique().tolist()) <= {0, 1}
        assert not np.array_equal(before["image"].numpy(), after["image"].numpy())
        foreground = after["image"][0] > 0.5
        agree = (foreground == (after["sem_seg"] == 1)).float().mean()
        unmoved = (foreground == (before["sem_seg"] == 1)).float().mean()
        # trilinear image vs nearest label differ on boundaries only (a 5-voxel tube in 16^3)
        assert agree >= 0.93 and agree > unmoved


def test_same_visit_seed_same_patches_and_another_seed_others(record):
    options = dict(GEOMETRIC, smooth_sigma=(0.5, 1.0), noise_std=0.1,
                   histogram_shift_points=(5, 15))
    first, again, other = (patches(record, s, **options) for s in (7, 7, 8))
    for a, b in zip(first, again):
        assert np.array_equal(a["image"].numpy(), b["image"].numpy())
    assert any(not np.array_equal(a["image"].numpy(), c["image"].numpy())
               for a, c in zip(first, other))


def test_intensity_transforms_leave_the_label_alone(record):
    plain = patches(record, 5)
    noisy = patches(record, 5, prob=1.0, noise_std=0.2)
    for before, after in zip(plain, noisy):
        assert np.array_equal(before["sem_seg"].numpy(), after["sem_seg"].numpy())
        # MONAI draws the noise's std uniformly in [0, NOISE_STD]
        assert 0.01 < float((after["image"] - before["image"]).std()) < 0.21


def test_everything_off_builds_nothing():
    assert build_patch_augmentation() is None


@pytest.mark.parametrize("options, key", [
    (dict(prob=1.5), "PROB"), (dict(flip_axes=(3,)), "FLIP_AXES"), (dict(zoom=(1.3, 1.1)), "ZOOM"),
    (dict(histogram_shift_points=(2, 4)), "HISTOGRAM_SHIFT"), (dict(noise_std=-1.0), "NOISE_STD"),
    (dict(shear=-0.1), "SHEAR")])
def test_bad_settings_name_their_key(options, key):
    with pytest.raises(ValueError, match=f"INPUT.VOLUME.AUGMENT.{key}"):
        build_patch_augmentation(**options)
