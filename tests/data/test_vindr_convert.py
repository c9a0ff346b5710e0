"""VinDr-SpineXR conversion on a miniature release written with pydicom: PNG pixels, COCO boxes
and classes, the study-level split, the count report, and the errors for bad releases."""
import json
import os
import sys

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless

import vertspine  # noqa: F401  (first)
from vertspine.data import phantom
from vertspine.data.spine_categories import LESION_CLASSES
from vertspine.data.vindr import (
    ConversionOptions,
    CsvImage,
    VinDrDataError,
    convert_vindr,
    read_vindr_csv,
    split_studies,
    vindr_dataset_paths,
)
from vertspine.data.vindr.coco import study_groups

import vindr_release as release

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The miniature release converted at native size, 8 bit, val = 2 of the 5 train studies."""
    root = str(tmp_path_factory.mktemp("vindr"))
    release.write_release(os.path.join(root, "release"))
    out = os.path.join(root, "out")
    report = convert_vindr(os.path.join(root, "release"), out,
                           ConversionOptions(val_fraction=0.4, seed=3))
    return {"release": os.path.join(root, "release"), "out": out, "report": report,
            "coco": {s: _load(vindr_dataset_paths(out)[s]["json"])
                     for s in ("train", "val", "test")}}


def _load(path):
    with open(path) as f:
        return json.load(f)


def _by_file(coco):
    return {image["file_name"]: image for image in coco["images"]}


def _boxes(coco, file_name):
    image = _by_file(coco)[file_name]
    return sorted((a["category_id"], a["rad_id"], a["bbox"]) for a in coco["annotations"]
                  if a["image_id"] == image["id"])


def test_classes_are_the_seven_in_upstream_order(converted):
    assert phantom.LESION_CLASSES is LESION_CLASSES  # one list: the phantom's is VinDr's
    for coco in converted["coco"].values():
        assert [(c["id"], c["name"]) for c in coco["categories"]] == [
            (1, "Osteophytes"), (2, "Surgical implant"), (3, "Spondylolysthesis"),
            (4, "Foraminal stenosis"), (5, "Disc space narrowing"), (6, "Vertebral collapse"),
            (7, "Other lesions")]


@pytest.mark.parametrize("image_id", ["imgA1", "imgA2", "imgC1", "imgE2"])
def test_png_pixels_are_windowed_and_monochrome1_inverted(converted, image_id):
    study, series, shape, photometric, _ = release.TRAIN[image_id]
    png = cv2.imread(os.path.join(converted["out"], "images", "train", f"{image_id}.png"),
                     cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == shape
    expected = release.expected_uint8(release.stored_pixels(shape, image_id), photometric)
    assert np.array_equal(png, expected)
    assert (png[0, 0] == 0) == (photometric == "MONOCHROME2")  # dark start unless inverted


def test_boxes_clipped_dropped_and_radiologists_kept(converted):
    all_train = {**_by_file(converted["coco"]["train"]), **_by_file(converted["coco"]["val"])}
    coco_of = {name: ("train" if name in _by_file(converted["coco"]["train"]) else "val")
               for name in all_train}
    a1 = _boxes(converted["coco"][coco_of["imgA1.png"]], "imgA1.png")
    assert a1 == [(1, "R1", [2.0, 3.0, 8.0, 9.0]), (1, "R2", [3.0, 3.0, 8.0, 10.0]),
                  (2, "R1", [20.0, 25.0, 12.0, 15.0])]  # clipped to x <= 32, y <= 40
    b1 = _boxes(converted["coco"][coco_of["imgB1.png"]], "imgB1.png")
    assert b1 == [(5, "R3", [5.0, 5.0, 10.0, 4.0])]  # the box outside the image is dropped
    stats = {s: converted["report"]["splits"][s] for s in ("train", "val")}
    assert sum(s["boxes_clipped"] for s in stats.values()) == 1
    assert sum(s["boxes_dropped"] for s in stats.values()) == 1


def test_normal_images_are_negatives_with_the_abnormal_label(converted):
    images = {**_by_file(converted["coco"]["train"]), **_by_file(converted["coco"]["val"])}
    assert len(images) == len(release.TRAIN)  # every image listed, normal ones too
    labels = {name[:-4]: image["abnormal"] for name, image in images.items()}
    assert labels == {"imgA1": 1, "imgA2": 0, "imgB1": 1, "imgC1": 0, "imgD1": 1, "imgE1": 0,
                      "imgE2": 1}
    assert _boxes(converted["coco"]["test"], "imgT2.png") == []
    assert _by_file(converted["coco"]["test"])["imgT2.png"]["abnormal"] == 0
    for coco in converted["coco"].values():
        for image in coco["images"]:
            study = (release.TRAIN.get(image["file_name"][:-4]) or
                     release.TEST[image["file_name"][:-4]])[0]
            assert image["study_id"] == study


def test_validation_split_is_study_level_seeded_and_from_train_only(converted, tmp_path, caplog):
    train, val = _by_file(converted["coco"]["train"]), _by_file(converted["coco"]["val"])
    train_studies = {i["study_id"] for i in train.values()}
    val_studies = {i["study_id"] for i in val.values()}
    assert not train_studies & val_studies
    assert len(val_studies) == 2 and len(train_studies) == 3  # round(0.4 * 5)
    assert set(train) | set(val) == {f"{i}.png" for i in release.TRAIN}
    assert {i["study_id"] for i in converted["coco"]["test"]["images"]} == {"sT"}
    # same seed, same split; the split does not depend on conversion settings
    again = convert_vindr(converted["release"], str(tmp_path / "again"),
                          ConversionOptions(val_fraction=0.4, seed=3, max_size=20))
    assert again["splits"]["val"]["studies"] == 2
    # no DICOM of the release carries a PatientID: grouped by study, and said so
    assert again["validation_grouping"] == {
        "unit": "study", "patients": 0, "studies": 5, "studies_without_patient_id": 5,
        "groups": 5, "patients_in_train_and_test": 0}
    assert "5 of 5 training studies have no PatientID" in caplog.text
    again_val = _load(vindr_dataset_paths(str(tmp_path / "again"))["val"]["json"])
    assert set(_by_file(again_val)) == set(val)


def test_studies_of_one_patient_are_grouped_transitively():
    rows = [("i1", "s1", "P1"), ("i2", "s2", "P1"), ("i3", "s2", "P2"), ("i4", "s3", "P2"),
            ("i5", "s4", ""), ("i6", "s5", "P3")]
    images = {i: CsvImage(i, study, "se") for i, study, _ in rows}
    patient_ids = {i: patient for i, _, patient in rows}
    # s2 holds images of P1 and P2, so s1, s2 and s3 go together; s4 has no PatientID: alone
    assert study_groups(images, patient_ids) == [["s1", "s2", "s3"], ["s4"], ["s5"]]
    assert study_groups(images, {}) == [["s1"], ["s2"], ["s3"], ["s4"], ["s5"]]
    train, val = split_studies(images, 0.34, seed=0, patient_ids=patient_ids)  # 1 of 3 groups
    assert {images[i].study_id for i in val} in ({"s1", "s2", "s3"}, {"s4"}, {"s5"})
    assert sorted(train + val) == sorted(images)


def test_validation_split_keeps_the_studies_of_a_patient_together(tmp_path, caplog):
    # P1: sA and sB; P2: sD and sE, also the test study sT; sC has no PatientID
    patients = {"sA": "P1", "sB": "P1", "sD": "P2", "sE": "P2", "sT": "P2"}
    root = release.write_release(str(tmp_path / "r"), patient_ids=patients)
    out = str(tmp_path / "o")
    for seed in range(4):
        report = convert_vindr(root, out, ConversionOptions(val_fraction=0.4, seed=seed))
        val = {i["study_id"] for i in _load(vindr_dataset_paths(out)["val"]["json"])["images"]}
        assert val in ({"sA", "sB"}, {"sC"}, {"sD", "sE"})  # round(0.4 * 3 groups) = 1 group
    assert report["validation_grouping"] == {
        "unit": "patient, study where no PatientID", "patients": 2, "studies": 5,
        "studies_without_patient_id": 1, "groups": 3, "patients_in_train_and_test": 1}
    assert "1 of 5 training studies have no PatientID" in caplog.text
    assert "1 PatientIDs have images in both train.csv and test.csv (e.g. P2)" in caplog.text


def test_report_counts_images_and_boxes_per_class(converted):
    report = converted["report"]
    test = report["splits"]["test"]
    assert (test["images"], test["studies"], test["abnormal_images"], test["normal_images"],
            test["boxes"]) == (2, 1, 1, 1, 3)
    assert test["classes"]["Osteophytes"] == {"images": 1, "boxes": 2}
    assert test["classes"]["Surgical implant"] == {"images": 1, "boxes": 1}
    assert test["classes"]["Other lesions"] == {"images": 0, "boxes": 0}
    train, val = report["splits"]["train"], report["splits"]["val"]
    # over train + val: by hand from vindr_release.TRAIN (after the dropped box)
    totals = {name: [c["images"] + val["classes"][name]["images"],
                     c["boxes"] + val["classes"][name]["boxes"]]
              for name, c in train["classes"].items()}
    assert totals == {"Osteophytes": [2, 3], "Surgical implant": [1, 1],
                      "Spondylolysthesis": [1, 1], "Foraminal stenosis": [1, 1],
                      "Disc space narrowing": [1, 1], "Vertebral collapse": [1, 1],
                      "Other lesions": [0, 0]}
    assert train["images"] + val["images"] == 7
    assert train["normal_images"] + val["normal_images"] == 3
    saved = _load(vindr_dataset_paths(converted["out"])["report"])
    assert saved["splits"] == report["splits"]


def test_downscaled_copy_rescales_boxes(tmp_path, converted):
    out = str(tmp_path / "small")
    convert_vindr(converted["release"], out,
                  ConversionOptions(val_fraction=0.4, seed=3, max_size=20))
    png = cv2.imread(os.path.join(out, "images", "test", "imgT1.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (20, 16)  # 40 x 32 -> longest side 20
    full = cv2.imread(os.path.join(converted["out"], "images", "test", "imgT1.png"), 0)
    area = cv2.resize(full.astype(np.float64), (16, 20), interpolation=cv2.INTER_AREA)
    assert np.abs(png.astype(np.float64) - area).max() <= 2.0  # resized before quantisation
    coco = _load(vindr_dataset_paths(out)["test"]["json"])
    assert _by_file(coco)["imgT1.png"]["height"] == 20
    assert _boxes(coco, "imgT1.png") == [(1, "R1", [0.5, 1.0, 1.0, 1.0]),
                                         (1, "R1", [2.5, 3.0, 2.0, 3.0]),
                                         (2, "R1", [5.0, 5.0, 5.0, 10.0])]


def test_sixteen_bit_pngs(tmp_path, converted):
    out = str(tmp_path / "b16")
    convert_vindr(converted["release"], out, ConversionOptions(val_fraction=0.4, bit_depth=16))
    png = cv2.imread(os.path.join(out, "images", "test", "imgT2.png"), cv2.IMREAD_UNCHANGED)
    stored = release.stored_pixels((40, 32), "imgT2")
    assert png.dtype == np.uint16
    assert np.array_equal(png, release.expected_uint16(stored, "MONOCHROME1"))


def test_compressed_and_headerless_dicoms_convert_like_the_originals(tmp_path):
    """A JPEG 2000 (lossless) file and a bare dataset without file meta, as archives hold them,
    give the PNGs of the uncompressed originals."""
    root = release.write_release(str(tmp_path / "r"))
    folder = os.path.join(root, "train_images")
    compressed = os.path.join(folder, "sA", "seA", "imgA1.dicom")
    ds = pydicom.dcmread(compressed)
    ds.compress(JPEG2000Lossless)
    ds.save_as(compressed)
    bare = os.path.join(folder, "sC", "seC", "imgC1.dicom")
    ds = pydicom.dcmread(bare)
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(bare, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    out = str(tmp_path / "o")
    convert_vindr(root, out, ConversionOptions(val_fraction=0.4, seed=3))
    for image_id in ("imgA1", "imgC1"):
        _, _, shape, photometric, _ = release.TRAIN[image_id]
        split = "train" if os.path.isfile(os.path.join(out, "images", "train", f"{image_id}.png")) \
            else "val"
        png = cv2.imread(os.path.join(out, "images", split, f"{image_id}.png"),
                         cv2.IMREAD_UNCHANGED)
        expected = release.expected_uint8(release.stored_pixels(shape, image_id), photometric)
        assert np.array_equal(png, expected)
    # a rerun reuses the PNGs, reading the sizes from the headers of both files
    png = os.path.join(out, "images", "train", "imgC1.png")  # val images are there too
    before = os.stat(png).st_mtime_ns
    convert_vindr(root, out, ConversionOptions(val_fraction=0.4, seed=3))
    assert os.stat(png).st_mtime_ns == before


def test_output_of_other_settings_is_refused_without_overwrite(converted):
    with pytest.raises(VinDrDataError, match="--overwrite"):
        convert_vindr(converted["release"], converted["out"], ConversionOptions(max_size=16))


def test_missing_dicom_names_the_image_row_and_fix(tmp_path):
    root = release.write_release(str(tmp_path / "r"))
    os.remove(os.path.join(root, "train_images", "sB", "seB", "imgB1.dicom"))
    with pytest.raises(VinDrDataError, match=r"imgB1 \(line \d+; expected .*imgB1\.dicom.*delete"):
        convert_vindr(root, str(tmp_path / "o"), ConversionOptions())


def test_a_study_in_both_csvs_is_refused_naming_it_and_the_fix(tmp_path):
    # train.csv: imgA1 lines 2-4, imgA2 line 5, imgB1 lines 6-7; test.csv: imgT1 2-4, imgX 5
    test = {**release.TEST, "imgX": ("sB", "seX", (40, 32), "MONOCHROME2",
                                     [("R1", "No finding", "", "", "", "")])}
    test.pop("imgT2")
    root = release.write_release(str(tmp_path / "r"), test=test)
    with pytest.raises(VinDrDataError, match=r"1 study_ids are in both train.csv and test.csv: "
                       r"sB \(train.csv line 6, test.csv line 5\)\..*Fix: keep each study in one"):
        convert_vindr(root, str(tmp_path / "o"), ConversionOptions())
    assert not os.path.exists(tmp_path / "o")  # refused before anything is written


@pytest.mark.parametrize("row, message", [
    (["sA", "seA", "imgA1", "R1", "Osteophyte", 1, 1, 2, 2],
     r"unknown lesion_type: line 14: 'Osteophyte'"),
    (["sA", "seA", "imgA1", "R1", "Osteophytes", "abc", 1, 2, 2],
     r"bad coordinates: line 14: .*not numbers"),
    (["sA", "seA", "imgA1", "R1", "Osteophytes", 5, 1, 2, 2], r"line 14: xmax < xmin"),
    (["sZ", "seA", "imgA1", "R1", "Osteophytes", 1, 1, 2, 2],
     r"line 14: image_id imgA1 in study sZ"),
])
def test_bad_rows_name_the_csv_line(tmp_path, row, message):
    # vindr_release.TRAIN has 12 rows (lines 2..13): the extra row is line 14
    root = release.write_release(str(tmp_path / "r"), extra_rows=[row])
    with pytest.raises(VinDrDataError, match=message) as error:
        convert_vindr(root, str(tmp_path / "o"), ConversionOptions())
    assert "train.csv" in str(error.value) and "Fix:" in str(error.value)


def test_invalid_boxes_can_be_dropped_and_counted(tmp_path):
    csv_file = str(tmp_path / "train.csv")
    release.write_csv(csv_file, [["s", "se", "i1", "R1", "Osteophytes", "", "", "", ""],
                                 ["s", "se", "i1", "R1", "Osteophytes", 1, 2, 3, 4]])
    with pytest.raises(VinDrDataError, match="line 2"):
        read_vindr_csv(csv_file)
    images, dropped = read_vindr_csv(csv_file, drop_invalid_boxes=True)
    assert dropped == 1 and [b.xyxy for b in images["i1"].boxes] == [(1.0, 2.0, 3.0, 4.0)]


def test_missing_columns_are_named(tmp_path):
    csv_file = str(tmp_path / "train.csv")
    release.write_csv(csv_file, [["a", "b"]], columns=["study_id", "image"])
    with pytest.raises(VinDrDataError, match=r"columns \['series_id', 'image_id'"):
        read_vindr_csv(csv_file)


def test_command_line_prints_the_report(tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
    import convert_vindr as tool

    root = release.write_release(str(tmp_path / "r"))
    report = tool.main(["--vindr-root", root, "--output", str(tmp_path / "o"), "--seed", "1",
                        "--val-fraction", "0.2", "--max-size", "30"])
    printed = capsys.readouterr().out
    assert "Osteophytes" in printed and "boxes clipped" in printed
    assert report["options"]["max_size"] == 30 and report["splits"]["val"]["studies"] == 1


def test_rerun_reuses_pngs_and_parallel_workers_write_the_same(converted, tmp_path):
    png = os.path.join(converted["out"], "images", "train", "imgA1.png")
    before = os.stat(png).st_mtime_ns
    again = convert_vindr(converted["release"], converted["out"],
                          ConversionOptions(val_fraction=0.4, seed=3))
    assert os.stat(png).st_mtime_ns == before  # reused, not rewritten
    assert again["splits"] == converted["report"]["splits"]
    parallel = str(tmp_path / "parallel")
    convert_vindr(converted["release"], parallel,
                  ConversionOptions(val_fraction=0.4, seed=3, workers=2))
    for split in ("train", "val", "test"):
        assert _load(vindr_dataset_paths(parallel)[split]["json"]) == converted["coco"][split]
    assert np.array_equal(cv2.imread(os.path.join(parallel, "images", "train", "imgA1.png"), -1),
                          cv2.imread(png, -1))
