"""tools/evaluate_prompt_seg.py end to end on small folders of challenge npz files: 2D and 3D
cases with values derived by hand, a missing prediction, an extra one, a volume without spacing,
an unknown prefix; the challenge's rules (--gate-dsc, --planar-nsd slab) as options."""
import csv
import json
from math import sqrt

import numpy as np
import pytest

from conftest import load_script


def _tool():
    return load_script("tools/evaluate_prompt_seg.py", "evaluate_prompt_seg")


def _square(shape=(20, 20), label=1):
    gts = np.zeros(shape, np.uint16)
    gts[5:15, 5:15] = label
    return gts


@pytest.fixture
def folders(tmp_path):
    gt, pred = tmp_path / "gts", tmp_path / "segs"
    gt.mkdir(), pred.mkdir()
    # 2D: perfect; shifted by 3 px (DSC 0.7, NSD (22 + sqrt 2) / (36 + 2 sqrt 2)); missing
    np.savez(gt / "2DBox_XRay_0.npz", gts=_square(label=300))
    np.savez(pred / "2DBox_XRay_0.npz", segs=_square(label=300))
    np.savez(gt / "2DBox_X-Ray_1.npz", gts=_square())
    np.savez(pred / "2DBox_X-Ray_1.npz", segs=np.roll(_square(), 3, axis=1))
    np.savez(gt / "2DBox_US_2.npz", gts=_square())
    # 3D (z, y, x) spacing (2.5, 0.8, 0.8), stored as the challenge's (x, y, z): shifted along x
    # by 1 voxel (0.8 mm): NSD 1 (2.5 mm with the stored order applied to the arrays: < 1)
    volume = np.zeros((8, 20, 20), np.uint8)
    volume[2:6, 4:14, 5:15] = 1
    np.savez(gt / "3DBox_CT_3.npz", gts=volume, spacing=np.array([0.8, 0.8, 2.5]))
    np.savez(pred / "3DBox_CT_3.npz", segs=np.roll(volume, 1, axis=2))
    # a volume without spacing; an unknown prefix; a prediction without ground truth
    np.savez(gt / "3DBox_MR_4.npz", gts=volume)
    np.savez(pred / "3DBox_MR_4.npz", segs=volume)
    np.savez(gt / "Photo_5.npz", gts=_square())
    np.savez(pred / "Photo_5.npz", segs=_square())
    np.savez(pred / "2DBox_OCT_9.npz", segs=_square())
    return tmp_path


def test_two_folders_scored_with_every_case_reported(folders):
    out = folders / "out"
    summary = _tool().main(["--pred", str(folders / "segs"), "--gt", str(folders / "gts"),
                            "--output", str(out)])
    nsd_shift3 = 100 * (22 + sqrt(2)) / (36 + 2 * sqrt(2))
    results = summary["results"]
    assert results["DSC-XRay"] == pytest.approx((100 + 70) / 2)
    assert results["NSD-XRay"] == pytest.approx((100 + nsd_shift3) / 2, abs=1e-4)
    assert results["DSC-US"] == 0.0 and results["NSD-US"] == 0.0  # missing: scored as empty
    assert results["DSC-CT"] == pytest.approx(100 * 2 * 90 / 200) and results["NSD-CT"] == 100.0
    assert results["DSC-unknown"] == 100.0
    assert results["DSC"] == pytest.approx((100 + 70 + 0 + 90 + 100) / 5)
    assert summary["missing"] == ["2DBox_US_2.npz"] and summary["extra"] == ["2DBox_OCT_9.npz"]
    assert summary["unknown_modality"] == ["Photo_5.npz"]
    assert list(summary["errors"]) == ["3DBox_MR_4.npz"]
    assert "needs 'spacing' (3 values" in summary["errors"]["3DBox_MR_4.npz"]
    with open(out / "prompt_seg_per_case.csv") as f:
        rows = {r["case"]: r for r in csv.DictReader(f)}
    assert len(rows) == 6 and rows["3DBox_MR_4.npz"]["DSC"] == ""
    assert float(rows["2DBox_X-Ray_1.npz"]["NSD"]) == pytest.approx(nsd_shift3, abs=1e-3)
    assert rows["2DBox_US_2.npz"]["note"] == "missing prediction: scored as empty"
    # voxel errors: the 3-px shift misses and adds 3 columns of 10; the missing prediction
    # misses its 100 px; the volume shifted by one column misses and adds 4 x 10 voxels
    assert [rows["2DBox_X-Ray_1.npz"][k] for k in ("missed", "spurious", "swapped")] == [
        "30", "30", "0"]
    assert rows["3DBox_MR_4.npz"]["missed"] == ""  # not scored
    assert summary["voxel_errors"] == {"missed": 170, "spurious": 70, "swapped": 0}
    with open(out / "prompt_seg_summary.json") as f:
        assert json.load(f)["results"]["DSC-CT"] == pytest.approx(90.0)
    with open(out / "prompt_seg_per_label.csv") as f:
        assert ["300", "100.0000", "100.0000"] in [r[3:] for r in csv.reader(f)]


def test_challenge_rules_as_options(folders):
    args = ["--pred", str(folders / "segs"), "--gt", str(folders / "gts")]
    unreversed = _tool().main(args + ["--spacing-order", "zyx"])["results"]
    assert unreversed["NSD-CT"] < 95.0  # the x shift read as 2.5 mm, as the challenge did
    slab = _tool().main(args + ["--planar-nsd", "slab"])["results"]
    face = 81 + 36 * sqrt(2) / 2 + 4 * sqrt(3) / 8
    nsd_slab = 100 * (1 - (9 * sqrt(2) / 2 + 2 * sqrt(3) / 8) / face)
    assert slab["NSD-XRay"] == pytest.approx((100 + nsd_slab) / 2, abs=1e-4)
    np.savez(folders / "segs" / "2DBox_X-Ray_1.npz", segs=np.roll(_square(), 9, axis=1))
    free = _tool().main(args)["results"]["NSD-XRay"]
    gated = _tool().main(args + ["--gate-dsc", "0.2"])["results"]["NSD-XRay"]
    assert gated == pytest.approx(50.0) and free > gated  # DSC 0.1: NSD set to 0 by the gate


@pytest.mark.parametrize("name, modality", [
    ("2DBox_X-Ray_demo.npz", "XRay"), ("2DBox_XRay_1.npz", "XRay"), ("2DBox_CXR_7.npz", "XRay"),
    ("3DBox_CT_0566.npz", "CT"), ("3DBox_MR_1.npz", "MR"), ("2DBox_Mammo_3.npz", "Mammography"),
    ("2DBox_Microscope_2.npz", "Microscopy"), ("2DBox_Ultrasound_1.npz", "US"),
    ("Dermoscopy_ISIC_1.npz", "Dermoscopy"), ("2DBox_Photo_1.npz", None),
    ("2DBox_OCT_4.npz", "OCT"), ("CTA_1.npz", None), ("MRI_brain_2.npz", "MR"),
])
def test_modality_from_the_file_name_prefix(name, modality):
    assert _tool().modality_from_name(name) == modality
