"""Tests of vertspine.data.prompt_seg.modality: modality from challenge file names or a CSV."""
import pytest

import vertspine  # noqa: F401  (makes detectron2 importable)
from vertspine.data.prompt_seg import UnknownModalityError, assign_modalities, modality_from_name


@pytest.mark.parametrize("name,modality", [
    ("CT_AbdomenCT1K_Case_00001.npz", "CT"),
    ("3DBox_CT_0566.npz", "CT"),
    ("MR_totalseg_s0001.npz", "MR"),
    ("3DBox_MRI_0001.npz", "MR"),
    ("PET_autoPET_fdg_0001.npz", "PET"),
    ("US_Breast_0001.npz", "US"),
    ("2DBox_Ultrasound_0001.npz", "US"),
    ("XRay_chest_0001.npz", "XRay"),
    ("X-Ray_Teeth_0001.npz", "XRay"),       # DAFT's pattern missed this spelling
    ("2DBox_X-Ray_0001.npz", "XRay"),
    ("Xray_hand_1.npz", "XRay"),
    ("2DBox_CXR_demo.npz", "XRay"),
    ("XR_0001.npz", "XRay"),
    ("Dermoscopy_ISIC2018_0001.npz", "Dermoscopy"),
    ("2DBox_Dermoscope_1.npz", "Dermoscopy"),
    ("Endoscopy_Kvasir_1.npz", "Endoscopy"),
    ("Fundus_IDRiD_1.npz", "Fundus"),
    ("Mammo_CBIS_1.npz", "Mammography"),
    ("2DBox_Mammography_1.npz", "Mammography"),
    ("Microscope_NeurIPS_1.npz", "Microscopy"),
    ("2DBox_Microscopy_1.npz", "Microscopy"),
    ("OCT_retina_1.npz", "OCT"),             # not CT
    ("sub/dir/CT-7.npz", "CT"),
    ("CTA_heart_1.npz", None),               # a whole token only
    ("Xylophone_1.npz", None),
    ("case_CT_1.npz", None),                 # the prefix, not anywhere in the name
])
def test_modality_from_name(name, modality):
    assert modality_from_name(name) == modality


def test_unknown_prefixes_are_listed_in_one_error_or_skipped():
    files = ["/d/CT_a.npz", "/d/Foo_1.npz", "/d/XRay_b.npz", "/d/bar.npz"]
    with pytest.raises(UnknownModalityError, match=r"2 file\(s\).*Foo_1.npz, bar.npz"):
        assign_modalities(files)
    found, skipped = assign_modalities(files, unknown="skip")
    assert found == {"/d/CT_a.npz": "CT", "/d/XRay_b.npz": "XRay"}
    assert skipped == ["/d/Foo_1.npz", "/d/bar.npz"]


def test_csv_column_routes_and_must_list_every_file(tmp_path):
    table = tmp_path / "modalities.csv"
    table.write_text("file_name,modality\ncase1.npz,Fundus\nsub/case2.npz,X-ray-like\n")
    found, _ = assign_modalities(["/x/case1.npz", "/y/case2.npz"], str(table))
    assert found == {"/x/case1.npz": "Fundus", "/y/case2.npz": "X-ray-like"}
    with pytest.raises(UnknownModalityError, match="not listed in .*modalities.csv.*case3.npz"):
        assign_modalities(["/x/case1.npz", "/x/case3.npz"], str(table))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,modality\ncase1.npz,CT\n")
    with pytest.raises(ValueError, match=r"no column \['file_name'\]"):
        assign_modalities(["/x/case1.npz"], str(bad))
    found, _ = assign_modalities(["/x/case1.npz"], str(bad), file_column="file")
    assert found == {"/x/case1.npz": "CT"}
