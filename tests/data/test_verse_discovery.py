"""Finding VerSe files (VerSe19/VerSe20 layouts) and patient-level splits."""
import os

import pytest

from vertspine.data.verse import assign_splits, find_verse_scans
from vertspine.data.verse.discovery import folder_split


def touch(root, relative):
    path = os.path.join(root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def verse20_layout(root, release, scan_id, *, centroids=True):
    subject = scan_id.split("_")[0]
    touch(root, f"{release}/rawdata/{subject}/{scan_id}_ct.nii.gz")
    touch(root, f"{release}/derivatives/{subject}/{scan_id}_seg-vert_msk.nii.gz")
    if centroids:
        touch(root, f"{release}/derivatives/{subject}/{scan_id}_seg-subreg_ctd.json")


@pytest.mark.parametrize("path, split", [
    ("dataset-verse19training/rawdata/sub-verse004/x_ct.nii.gz", "train"),
    ("dataset-verse19validation/sub-verse011/x_ct.nii.gz", "val"),
    ("dataset-03test/derivatives/sub-gl017/x_seg-vert_msk.nii.gz", "test"),
    ("train/x_ct.nii.gz", "train"),
    ("verse/val/p1/x_ct.nii.gz", "val"),
    ("contest/latest/x_ct.nii.gz", None),
    ("sub-verse004/x_ct.nii.gz", None),
])
def test_folder_split(path, split):
    assert folder_split(path) == split


def test_verse20_folders_pair_rawdata_and_derivatives(tmp_path):
    root = str(tmp_path)
    verse20_layout(root, "dataset-01training", "sub-gl003_dir-ax")
    verse20_layout(root, "dataset-01training", "sub-verse500_dir-sag", centroids=False)
    verse20_layout(root, "dataset-02validation", "sub-gl016_dir-ax")
    verse20_layout(root, "dataset-03test", "sub-verse510_dir-ax")
    orphan = touch(root, "dataset-03test/rawdata/sub-gl090/sub-gl090_dir-ax_ct.nii.gz")
    scans, unpaired = find_verse_scans(root)
    assert [s.scan_id for s in scans] == ["sub-gl003_dir-ax", "sub-gl016_dir-ax",
                                          "sub-verse500_dir-sag", "sub-verse510_dir-ax"]
    assert unpaired == [orphan]
    first = scans[0]
    assert first.patient_id == "sub-gl003" and first.folder_split == "train"
    assert first.ct_path.endswith("rawdata/sub-gl003/sub-gl003_dir-ax_ct.nii.gz")
    assert first.mask_path.endswith("derivatives/sub-gl003/sub-gl003_dir-ax_seg-vert_msk.nii.gz")
    assert first.centroid_path.endswith("sub-gl003_dir-ax_seg-subreg_ctd.json")
    assert scans[2].centroid_path is None
    splits = assign_splits(scans)  # auto: every scan lies in a release folder
    assert {k: [s.scan_id for s in v] for k, v in splits.items()} == {
        "train": ["sub-gl003_dir-ax", "sub-verse500_dir-sag"],
        "val": ["sub-gl016_dir-ax"],
        "test": ["sub-verse510_dir-ax"],
    }


def make_flat_patients(root, num_patients):
    """VerSe19-style flat folders; every third patient has two scans."""
    for p in range(num_patients):
        scans = [f"verse{p:03d}"] + ([f"verse{p:03d}_split-2"] if p % 3 == 0 else [])
        for scan_id in scans:
            touch(root, f"verse{p:03d}/{scan_id}_ct.nii.gz")
            touch(root, f"verse{p:03d}/{scan_id}_seg-vert_msk.nii.gz")


def test_random_splits_are_patient_level_seeded_and_cover_everything(tmp_path):
    make_flat_patients(str(tmp_path), 20)
    scans, _ = find_verse_scans(str(tmp_path))
    assert len(scans) == 27 and all(s.folder_split is None for s in scans)
    splits = assign_splits(scans, ratios=(0.6, 0.2, 0.2), seed=1)
    patients = {k: {s.patient_id for s in v} for k, v in splits.items()}
    assert [len(patients[k]) for k in ("train", "val", "test")] == [12, 4, 4]
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"]
                or patients["val"] & patients["test"])
    assert sorted(s.scan_id for v in splits.values() for s in v) == sorted(s.scan_id for s in scans)
    again = assign_splits(scans, ratios=(0.6, 0.2, 0.2), seed=1)
    other = assign_splits(scans, ratios=(0.6, 0.2, 0.2), seed=2)
    assert again == splits and other != splits


def test_split_and_discovery_errors_name_the_problem(tmp_path):
    root = str(tmp_path)
    verse20_layout(root, "dataset-01training", "sub-a_dir-ax")
    verse20_layout(root, "dataset-02validation", "sub-a_dir-sag")
    scans, _ = find_verse_scans(root)
    with pytest.raises(ValueError, match="'sub-a' has scans in several split folders"):
        assign_splits(scans, mode="folders")
    with pytest.raises(ValueError, match="not one of auto, folders, random"):
        assign_splits(scans, mode="kfold")
    with pytest.raises(ValueError, match="split ratios"):
        assign_splits(scans, mode="random", ratios=(1.0, -0.5, 0.5))
    touch(root, "copy/sub-a_dir-ax_ct.nii.gz")
    with pytest.raises(ValueError, match="Two ct files for scan 'sub-a_dir-ax'"):
        find_verse_scans(root)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_verse_scans(str(tmp_path / "nowhere"))
    flat = str(tmp_path / "flat")
    touch(flat, "dataset-01training/p1/p1_ct.nii.gz")
    touch(flat, "dataset-01training/p1/p1_seg-vert_msk.nii.gz")
    touch(flat, "extra/p2_ct.nii.gz")
    touch(flat, "extra/p2_seg-vert_msk.nii.gz")
    scans, _ = find_verse_scans(flat)
    with pytest.raises(ValueError, match="p2_ct.nii.gz is not under a train/validation/test"):
        assign_splits(scans, mode="folders")
    auto = assign_splits(scans)  # not all in release folders: random, default ratios
    assert [s.scan_id for s in auto["train"]] == ["p1", "p2"] and not auto["val"] and not auto["test"]
