"""VerSe conversion on tiny synthetic NIfTI spines written in VerSe's layout."""
import json
import os

import cv2
import nibabel as nib
import numpy as np
import pytest

from vertspine.data import load_validated_coco_json
from vertspine.data.phantom import VERTEBRA_LEVELS
from vertspine.data.verse import VerseConversionConfig, convert_verse, find_verse_scans
from vertspine.data.verse.volume import load_scan, read_centroids, sagittal_centre

SHAPE = (11, 40, 40)  # RAS+: x left->right, y posterior->anterior, z inferior->superior
SPACING = (1.0, 0.5, 2.0)  # mm
# VerSe label -> (x range, z range), all with y in [4, 20): superior blocks have larger z.
BLOCKS = {
    18: ((5, 7), (32, 38)),  # T11, only on x = 5, 6
    19: ((3, 8), (26, 32)),  # T12
    28: ((3, 8), (20, 26)),  # T13 (transitional)
    20: ((3, 8), (14, 20)),  # L1
    21: ((3, 8), (8, 14)),  # L2
    26: ((3, 8), (2, 8)),  # sacrum
}
TINY_L3 = (5, 4, 0)  # one voxel of L3: below any area threshold used here
Y_RANGE = (4, 20)
CONFIG = VerseConversionConfig(num_slices=3, slice_step_mm=1.0, min_box_area=20.0, split_mode="random",
                               split_ratios=(1.0, 0.0, 0.0))


def synthetic_spine():
    """(ct, mask) arrays in RAS+ order: labelled blocks, CT bright anteriorly for orientation."""
    mask = np.zeros(SHAPE, np.int16)
    for label, ((x0, x1), (z0, z1)) in BLOCKS.items():
        mask[x0:x1, Y_RANGE[0]:Y_RANGE[1], z0:z1] = label
    mask[TINY_L3] = 22
    ct = np.full(SHAPE, -1000.0, np.float32)
    ct[mask > 0] = 300.0
    ct[:, 36:, :] = 1300.0  # anterior strip: white
    ct[:, :, 38:] = 1300.0  # superior strip: white
    return ct, mask


def ras_affine():
    affine = np.diag(list(SPACING) + [1.0])
    affine[:3, 3] = (-5.0, 12.0, -30.0)
    return affine


def to_pir(array, affine):
    """The same physical volume stored P-I-R: array axes (P, I, R), with a matching affine."""
    nx, ny, nz = SHAPE
    pir = np.ascontiguousarray(np.transpose(array[:, ::-1, ::-1], (1, 2, 0)))
    columns = np.stack([-affine[:3, 1], -affine[:3, 2], affine[:3, 0]], axis=1)
    origin = affine @ np.array([0, ny - 1, nz - 1, 1.0])
    pir_affine = np.eye(4)
    pir_affine[:3, :3], pir_affine[:3, 3] = columns, origin[:3]
    return pir, pir_affine


def centroids_pir(mask):
    """VerSe-style centroid json entries in P-I-R voxel coordinates (flipped axes: n - c)."""
    nx, ny, nz = SHAPE
    entries = [{"direction": ["P", "I", "R"]}]
    for label in sorted(BLOCKS):
        x, y, z = np.argwhere(mask == label).mean(axis=0)
        entries.append({"label": label, "X": ny - y, "Y": nz - z, "Z": x})
    return entries


def write_scan(folder, scan_id, *, orientation="RAS", centroids=True, derivatives=None):
    """Write <scan>_ct.nii.gz, <scan>_seg-vert_msk.nii.gz (and ctd json) like VerSe."""
    ct, mask = synthetic_spine()
    affine = ras_affine()
    if orientation == "PIR":
        (ct, pir_affine), (mask, _) = to_pir(ct, affine), to_pir(mask, affine)
        affine = pir_affine
    derivatives = derivatives or folder
    os.makedirs(folder, exist_ok=True)
    os.makedirs(derivatives, exist_ok=True)
    nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), os.path.join(folder, f"{scan_id}_ct.nii.gz"))
    nib.save(nib.Nifti1Image(mask, affine), os.path.join(derivatives, f"{scan_id}_seg-vert_msk.nii.gz"))
    if centroids:
        with open(os.path.join(derivatives, f"{scan_id}_seg-subreg_ctd.json"), "w") as f:
            json.dump(centroids_pir(synthetic_spine()[1]), f)


def load_coco(path):
    with open(path) as f:
        return json.load(f)


def expected_box(label):
    """Pixel-edge XYXY of a block on the 1 mm PNG: rows = (nz-1-z) * 2 mm, cols = (ny-1-y) * 0.5 mm."""
    (_, _), (z0, z1) = BLOCKS[label]
    nx, ny, nz = SHAPE
    return [(ny - Y_RANGE[1]) * 0.5, (nz - z1) * 2.0, (ny - Y_RANGE[0]) * 0.5, (nz - z0) * 2.0]


@pytest.mark.parametrize("orientation", ["RAS", "PIR"])
def test_boxes_labels_and_orientation(tmp_path, orientation):
    write_scan(str(tmp_path / "in" / "sub-verse001"), "sub-verse001", orientation=orientation)
    report = convert_verse(str(tmp_path / "in"), str(tmp_path / "out"), "verse19", CONFIG)
    coco = load_coco(tmp_path / "out" / "annotations" / "verse19_train.json")
    assert [c["id"] for c in coco["categories"]] == list(range(1, 26))
    assert [c["name"] for c in coco["categories"]] == list(VERTEBRA_LEVELS)
    # centre x = 5 from the centroids: slices 4, 5, 6
    assert [im["slice_index"] for im in coco["images"]] == [4, 5, 6]
    assert all((im["height"], im["width"]) == (80, 20) for im in coco["images"])
    by_image = {im["id"]: [] for im in coco["images"]}
    for ann in coco["annotations"]:
        by_image[ann["image_id"]].append(ann)
    first, middle = by_image[1], by_image[2]
    assert [a["category_id"] for a in first] == [19, 20, 21]  # T11 not on x = 4
    assert [a["category_id"] for a in middle] == [18, 19, 20, 21]  # cranial -> caudal
    for ann in middle:
        x0, y0, x1, y1 = expected_box(ann["category_id"])
        assert ann["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
        assert ann["area"] == pytest.approx((x1 - x0) * (y1 - y0))  # full blocks
    # superior up: T11 above T12 above L2; anterior left: white strip in the first columns
    tops = {a["category_id"]: a["bbox"][1] for a in middle}
    assert tops[18] < tops[19] < tops[20] < tops[21]
    png = cv2.imread(str(tmp_path / "out" / "images" / "train" / coco["images"][1]["file_name"]),
                     cv2.IMREAD_UNCHANGED)
    assert png.shape == (80, 20) and png.dtype == np.uint8
    assert png[:3, :].min() == 255  # superior strip (z >= 38): the top rows
    assert png[40:, :2].min() == 255 and png[40:, -2:].max() == 0  # anterior left, air right
    assert png[45, 14] == round((300 + 500) / 1800 * 255)  # bone window 400/1800 on a block
    # T13 skipped (3 slices), sacrum skipped, the 1-voxel L3 below the area threshold
    assert report.t13_boxes_skipped == 3 and report.other_labels_skipped["Sacrum"] == 3
    assert report.boxes["train"]["L3"] == 0 and report.boxes["train"]["T11"] == 2
    assert report.centre_sources["centroids"] == 1
    assert "T13 (label 28): 3 boxes skipped" in str(report)


def test_canonical_and_rotated_files_give_identical_output(tmp_path):
    for orientation in ("RAS", "PIR"):
        write_scan(str(tmp_path / orientation / "sub-a"), "sub-a", orientation=orientation)
        convert_verse(str(tmp_path / orientation), str(tmp_path / f"out_{orientation}"), "v", CONFIG)
    ras, pir = (load_coco(tmp_path / f"out_{o}" / "annotations" / "v_train.json") for o in ("RAS", "PIR"))
    assert ras["annotations"] == pir["annotations"] and ras["images"] == pir["images"]
    for image in ras["images"]:
        a, b = (cv2.imread(str(tmp_path / f"out_{o}" / "images" / "train" / image["file_name"]))
                for o in ("RAS", "PIR"))
        assert np.array_equal(a, b)


def test_t13_drop_slice_and_registration_loads_the_json(tmp_path):
    write_scan(str(tmp_path / "in"), "sub-b")
    config = VerseConversionConfig(num_slices=3, slice_step_mm=1.0, min_box_area=20.0, t13="drop-slice",
                                   split_mode="random", split_ratios=(1, 0, 0))
    report = convert_verse(str(tmp_path / "in"), str(tmp_path / "out"), "verse20", config)
    assert report.t13_slices_dropped == 3 and report.slices["train"] == 0
    write_scan(str(tmp_path / "in2"), "sub-b")
    convert_verse(str(tmp_path / "in2"), str(tmp_path / "out2"), "verse20", CONFIG)
    records = load_validated_coco_json(
        str(tmp_path / "out2" / "annotations" / "verse20_train.json"),
        str(tmp_path / "out2" / "images" / "train"), "verse_convert_test",
        num_classes=25, thing_classes=VERTEBRA_LEVELS,
    )
    assert len(records) == 3
    assert [a["category_id"] for a in records[1]["annotations"]] == [17, 18, 19, 20]  # 0-based


def test_centre_from_centroids_or_mask(tmp_path):
    write_scan(str(tmp_path), "sub-c")
    (scan,), _ = find_verse_scans(str(tmp_path))
    volume = load_scan(scan)
    assert volume.spacing == SPACING and volume.mask.shape == SHAPE
    centre, source = sagittal_centre(volume, scan.centroid_path)
    assert source == "centroids" and centre == pytest.approx(np.mean([5.5, 5, 5, 5, 5, 5]))
    direction, points = read_centroids(scan.centroid_path)
    assert direction == ("P", "I", "R") and points[20][2] == pytest.approx(5.0)
    # centroids on another scale (e.g. millimetres x 10) disagree with the mask: mask centre
    with open(scan.centroid_path, "w") as f:
        json.dump([{"direction": ["P", "I", "R"]}, {"label": 20, "X": 1, "Y": 1, "Z": 50.0}], f)
    centre, source = sagittal_centre(volume, scan.centroid_path)
    assert source == "mask (centroids disagree)"
    assert centre == pytest.approx(np.argwhere(volume.mask > 0)[:, 0].mean())
    assert sagittal_centre(volume, None)[1] == "mask"


def test_errors_name_the_file(tmp_path):
    write_scan(str(tmp_path), "sub-d")
    ctd = str(tmp_path / "sub-d_seg-subreg_ctd.json")
    with open(ctd, "w") as f:
        json.dump([{"label": 1, "X": 0, "Y": 0, "Z": 0}], f)
    with pytest.raises(ValueError, match="sub-d_seg-subreg_ctd.json.*direction"):
        convert_verse(str(tmp_path), str(tmp_path / "out"), "v", CONFIG)
    os.remove(ctd)
    mask_path = str(tmp_path / "sub-d_seg-vert_msk.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), mask_path)
    with pytest.raises(ValueError, match="sub-d_seg-vert_msk.nii.gz.*not on the voxel grid.*sub-d_ct"):
        convert_verse(str(tmp_path), str(tmp_path / "out"), "v", CONFIG)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="No VerSe scan under .*empty"):
        convert_verse(str(tmp_path / "empty"), str(tmp_path / "out2"), "v", CONFIG)


def test_command_line_writes_where_the_registered_names_read(tmp_path, monkeypatch, capsys):
    from detectron2.data import DatasetCatalog

    from vertspine.data.builtin_verse import register_verse_datasets

    from conftest import load_script

    main = load_script("tools/convert_verse.py", "convert_verse_tool").main

    write_scan(str(tmp_path / "raw" / "dataset-verse19training" / "sub-verse004"), "sub-verse004")
    write_scan(str(tmp_path / "raw" / "dataset-verse19test" / "sub-verse005"), "sub-verse005")
    monkeypatch.setenv("VERTSPINE_DATASETS", str(tmp_path / "sets"))
    assert main(["--input", str(tmp_path / "raw"), "--name", "verse19", "--num-slices", "1",
                 "--min-box-area", "20"]) == 0
    printed = capsys.readouterr().out
    assert "train: 1 patients, 1 scans, 1 slices, 4 boxes" in printed
    assert "test : 1 patients, 1 scans, 1 slices, 4 boxes" in printed
    try:
        register_verse_datasets()
        records = DatasetCatalog.get("verse19_test")
        assert len(records) == 1 and len(records[0]["annotations"]) == 4
        assert DatasetCatalog.get("verse19_val") == []
    finally:
        monkeypatch.delenv("VERTSPINE_DATASETS")
        register_verse_datasets()
    assert main(["--input", str(tmp_path / "missing"), "--name", "verse19"]) == 2
    assert "missing does not exist" in capsys.readouterr().err
