"""Tests of vertspine.data.volume_datasets: NIfTI folders and vesselFM npy cases as datasets."""
import logging
import os

import nibabel as nib
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import vertspine  # noqa: F401  (makes detectron2 importable)
from test_image_label_datasets import names  # noqa: F401  (fixture: names unregistered after)
from vertspine.data import DatasetValidationError, unregister_dataset
from vertspine.data.readers import ImageReadError
from vertspine.data.volume_datasets import (
    register_npy_cases,
    register_volume_cases,
    register_volume_folder,
)

AFFINE = np.array([  # oblique-ish, anisotropic: 0.8 x 0.7 x 2.5 mm
    [0.0, 0.0, -2.5, 10.0],
    [0.8, 0.0, 0.0, -20.0],
    [0.0, -0.7, 0.0, 5.0],
    [0.0, 0.0, 0.0, 1.0],
])
SHAPE = (6, 5, 4)


def ct(seed=0):
    """int16 Hounsfield-like values in [-1024, 1500]."""
    return np.random.default_rng(seed).integers(-1024, 1500, SHAPE).astype(np.int16)


def label(value=1):
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:4, 1:3, 1:3] = value
    return labels


def save(path, array, affine=AFFINE):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)
    return path


def msd_folder(root, cases=("liver_1", "liver_2"), *, image_suffix=""):
    for i, case in enumerate(cases):
        save(str(root / "imagesTr" / f"{case}{image_suffix}.nii.gz"), ct(i))
        save(str(root / "labelsTr" / f"{case}.nii.gz"), label(1 + i % 2))
    return str(root / "imagesTr"), str(root / "labelsTr")


def register_folder(names, name, *args, **kwargs):
    names.append(name)
    kwargs.setdefault("class_names", ["liver", "tumour"])
    register_volume_folder(name, *args, **kwargs)
    return DatasetCatalog.get(name)


def test_msd_folder_records_carry_nibabel_geometry(tmp_path, names):
    image_dir, label_dir = msd_folder(tmp_path)
    names.append("vol_msd")
    register_volume_folder("vol_msd", image_dir, label_dir, class_names=["liver", "tumour"],
                           ignore_label=255)
    records = DatasetCatalog.get("vol_msd")
    assert [r["image_id"] for r in records] == ["liver_1", "liver_2"]
    reference = nib.load(os.path.join(image_dir, "liver_1.nii.gz"))
    first = records[0]
    assert first["file_name"] == os.path.join(image_dir, "liver_1.nii.gz")
    assert first["label_file"] == os.path.join(label_dir, "liver_1.nii.gz")
    assert first["spacing"] == [float(z) for z in reference.header.get_zooms()]
    np.testing.assert_allclose(first["spacing"], (0.8, 0.7, 2.5), rtol=1e-6)
    assert first["affine"] == reference.affine.tolist()
    assert first["shape"] == list(SHAPE) and first["spatial_dims"] == 3
    metadata = MetadataCatalog.get("vol_msd")
    assert metadata.evaluator_type == "sem_seg_dice" and metadata.spatial_dims == 3
    assert metadata.thing_classes == ["liver", "tumour"]
    assert metadata.stuff_classes == ["background", "liver", "tumour"]
    assert metadata.ignore_label == 255 and metadata.image_root == image_dir


def test_registration_is_lazy_and_reregistration_needs_unregister(tmp_path, names):
    names.append("vol_lazy")
    register_volume_folder("vol_lazy", str(tmp_path / "nowhere"), class_names=["vessel"])
    with pytest.raises(ValueError, match="already registered.*unregister_dataset"):
        register_volume_folder("vol_lazy", str(tmp_path / "nowhere"), class_names=["vessel"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        DatasetCatalog.get("vol_lazy")
    unregister_dataset("vol_lazy")
    image_dir, _ = msd_folder(tmp_path)
    register_volume_folder("vol_lazy", image_dir, class_names=["vessel"])
    records = DatasetCatalog.get("vol_lazy")  # unlabeled: no label_file
    assert len(records) == 2 and all("label_file" not in r for r in records)


def test_nnunet_channel_suffix_is_stripped(tmp_path, names):
    image_dir, label_dir = msd_folder(tmp_path, image_suffix="_0000")
    (tmp_path / "imagesTr" / "._liver_1_0000.nii.gz").write_bytes(b"macOS metadata")
    records = register_folder(names, "vol_nnunet", image_dir, label_dir)
    assert [r["image_id"] for r in records] == ["liver_1", "liver_2"]
    save(str(tmp_path / "imagesTr" / "liver_1_0001.nii.gz"), ct())
    with pytest.raises(DatasetValidationError, match="liver_1_0001.*extra nnU-Net channels"):
        register_folder(names, "vol_nnunet_2ch", image_dir, label_dir)


def test_explicit_case_list(tmp_path, names):
    image = save(str(tmp_path / "a" / "case7.nii.gz"), ct())
    labels = save(str(tmp_path / "b" / "case7_seg.nii.gz"), label())
    names.append("vol_list")
    register_volume_cases("vol_list", [(image, labels)], class_names=["vessel"])
    (record,) = DatasetCatalog.get("vol_list")
    assert record["image_id"] == "case7" and record["label_file"] == labels
    np.testing.assert_allclose(record["affine"], AFFINE, rtol=1e-6)  # float32 in the header


def test_npy_cases(tmp_path, names):
    for split, cases in (("train", ["c1", "c2"]), ("val", ["c3"])):
        for case in cases:
            folder = tmp_path / split / case
            folder.mkdir(parents=True)
            np.save(folder / "img.npy", np.linspace(0, 1, np.prod(SHAPE)).reshape(SHAPE))
            np.save(folder / "mask.npy", label().astype(np.float32))
    registered = register_npy_cases("smile", str(tmp_path), ("train", "val"),
                                    class_names=["vessel"], spacing=(0.5, 0.5, 2.0))
    names.extend(registered)
    assert registered == ["smile_train", "smile_val"]
    train = DatasetCatalog.get("smile_train")
    assert [r["image_id"] for r in train] == ["c1", "c2"]
    assert train[0]["file_name"] == str(tmp_path / "train" / "c1" / "img.npy")
    assert train[0]["label_file"] == str(tmp_path / "train" / "c1" / "mask.npy")
    assert train[0]["spacing"] == [0.5, 0.5, 2.0]
    assert train[0]["affine"] == np.diag([0.5, 0.5, 2.0, 1.0]).tolist()
    os.remove(tmp_path / "val" / "c3" / "mask.npy")
    with pytest.raises(DatasetValidationError, match=r"1 of 1 cases .*no mask.npy.*\['c3'\]"):
        DatasetCatalog.get("smile_val")


def test_npy_cases_need_spacing(tmp_path):
    with pytest.raises(ValueError, match=r"store no voxel spacing; pass spacing=.*\(1, 1, 1\)"):
        register_npy_cases("nospacing", str(tmp_path), class_names=["vessel"])
    with pytest.raises(ValueError, match=r"spacing \(1.0, 0.0, 1.0\) must be 3 positive"):
        register_npy_cases("zerospacing", str(tmp_path), class_names=["vessel"],
                           spacing=(1, 0, 1))
    assert "nospacing_train" not in DatasetCatalog


def with_value(array, value, dtype=np.float32):
    """``array`` as ``dtype`` with its first voxel set to ``value``."""
    array = array.astype(dtype)
    array[0, 0, 0] = value
    return array


SHIFTED = AFFINE + np.pad([[5.0]], ((0, 3), (3, 0)))  # translated 5 mm along x

INVALID_CASES = {  # name: (folder of the replaced file, its array, its affine, expected error)
    "shape": ("labelsTr", np.zeros((6, 5, 3), np.uint8), AFFINE,
              r"labelsTr/c1.nii.gz has shape \(6, 5, 3\) but its image .*imagesTr/c1.nii.gz "
              r"has shape \(6, 5, 4\).*resample"),
    "affine": ("labelsTr", label(), SHIFTED,
               r"labelsTr/c1.nii.gz has affine .* but its image .*imagesTr/c1.nii.gz.*grid"),
    "nan_image": ("imagesTr", with_value(ct(), np.inf), AFFINE,
                  "imagesTr/c1.nii.gz: 1 NaN or infinite voxels; fix the file"),
    "nan_label": ("labelsTr", with_value(label(), np.nan), AFFINE,
                  "labelsTr/c1.nii.gz: 1 NaN or infinite voxels"),
    "class_3": ("labelsTr", with_value(label(), 3), AFFINE, r"values \[3.0\]"),
    "negative": ("labelsTr", with_value(label(), -1, np.int16), AFFINE, r"values \[-1\]"),
    "fraction": ("labelsTr", with_value(label(), 0.5), AFFINE, r"values \[0.5\]"),
}


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_invalid_case(tmp_path, names, case):
    folder, array, affine, message = INVALID_CASES[case]
    image_dir, label_dir = msd_folder(tmp_path, ("c1",))
    save(str(tmp_path / folder / "c1.nii.gz"), array, affine)
    if message.startswith("values"):
        message = (rf"labelsTr/c1.nii.gz has {message} that are not integers in 0..2 \(0 "
                   r"background, 1..2 the class_names\); register .* or fix the label file")
    with pytest.raises(DatasetValidationError, match=message):
        register_folder(names, f"vol_{case}", image_dir, label_dir)


def test_ignore_label_is_accepted(tmp_path, names):
    image_dir, label_dir = msd_folder(tmp_path, ("c1",))
    labels = label()
    labels[0, 0, 0] = 255
    save(os.path.join(label_dir, "c1.nii.gz"), labels)
    assert len(register_folder(names, "vol_ignore", image_dir, label_dir, ignore_label=255)) == 1
    with pytest.raises(ValueError, match="ignore_label 2 is a class label"):
        register_folder(names, "vol_ignore_bad", image_dir, label_dir, ignore_label=2)


def test_empty_labels_skip_keep_error(tmp_path, names, caplog):
    image_dir, label_dir = msd_folder(tmp_path, ("c1", "c2", "c3"))
    save(os.path.join(label_dir, "c2.nii.gz"), np.zeros(SHAPE, np.uint8))
    with caplog.at_level(logging.WARNING, logger="vertspine.data.volume_validation"):
        records = register_folder(names, "vol_skip", image_dir, label_dir)
    assert [r["image_id"] for r in records] == ["c1", "c3"]
    assert "1 of 3 labels have no foreground, e.g. ['c2']; skipped" in caplog.text
    kept = register_folder(names, "vol_keep", image_dir, label_dir, empty_labels="keep")
    assert [r["image_id"] for r in kept] == ["c1", "c2", "c3"]
    with pytest.raises(DatasetValidationError,
                       match=r"labelsTr/c2.nii.gz has no foreground voxel.*empty_labels='keep'"):
        register_folder(names, "vol_error", image_dir, label_dir, empty_labels="error")
    with pytest.raises(ValueError, match="empty_labels='drop'"):
        register_folder(names, "vol_policy", image_dir, label_dir, empty_labels="drop")


def test_missing_label(tmp_path, names):
    image_dir, label_dir = msd_folder(tmp_path, ("c1", "c2"))
    os.remove(os.path.join(label_dir, "c2.nii.gz"))
    with pytest.raises(DatasetValidationError, match=r"1 of 2 images .*no label.*\['c2'\]"):
        register_folder(names, "vol_missing", image_dir, label_dir)


def test_zero_spacing_is_an_error(tmp_path, names):
    image_dir, label_dir = msd_folder(tmp_path, ("c1",))
    image = nib.Nifti1Image(ct(), None)  # no sform/qform: the geometry is pixdim only
    image.header["pixdim"][1:4] = (0.8, 0.7, -2.5)  # pixdim must be positive
    nib.save(image, os.path.join(image_dir, "c1.nii.gz"))
    with pytest.raises(ImageReadError, match=r"c1.nii.gz: voxel spacing \(.*-2.5\).*pixdim"):
        register_folder(names, "vol_spacing", image_dir, label_dir)
