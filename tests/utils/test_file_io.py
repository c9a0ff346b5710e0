"""vertspine.utils.file_io: atomic writers round-trip through the reference readers."""
import hashlib
import os
import stat

import cv2
import nibabel as nib
import numpy as np
import pytest

from vertspine.utils.file_io import (
    atomic_write,
    file_sha256,
    write_json,
    write_nifti,
    write_npz,
    write_png,
)


def test_atomic_write_leaves_target_untouched_and_no_temporary_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path), "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_files_get_the_umask_permissions_not_mkstemp_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        write_json(str(tmp_path / "a.json"), {"x": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o644


def test_write_json_round_trip_and_creates_folder(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_json(str(path), {"a": [1, 2.5, "x"]}, indent=None)
    assert path.read_text() == '{"a": [1, 2.5, "x"]}'


@pytest.mark.parametrize("dtype, shape", [(np.uint8, (5, 7)), (np.uint16, (5, 7)), (np.uint8, (4, 6, 3))])
def test_write_png_round_trip_with_opencv(tmp_path, dtype, shape):
    array = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape).astype(dtype)
    path = str(tmp_path / "a.png")
    write_png(path, array)
    read = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert read.dtype == dtype and np.array_equal(read, array)


def test_write_png_refuses_float_naming_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"a\.png: PNG holds uint8 or uint16 pixels, not float32"):
        write_png(str(tmp_path / "a.png"), np.zeros((2, 2), np.float32))
    assert not os.listdir(tmp_path)


def test_write_npz_round_trip(tmp_path):
    path = str(tmp_path / "case.npz")
    imgs, spacing = np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.array([2.5, 0.8, 0.8])
    write_npz(path, {"imgs": imgs, "spacing": spacing})
    with np.load(path) as data:
        assert sorted(data.files) == ["imgs", "spacing"]
        assert data["imgs"].dtype == np.int16 and np.array_equal(data["imgs"], imgs)
        assert np.array_equal(data["spacing"], spacing)


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_write_nifti_keeps_values_spacing_and_affine(tmp_path, name):
    affine = np.array([[-0.8, 0, 0, 100.0], [0, -0.7, 0, 50.0], [0, 0, 2.5, -30.0], [0, 0, 0, 1]])
    volume = np.random.default_rng(1).integers(-1000, 1500, (6, 5, 4)).astype(np.int16)
    path = str(tmp_path / name)
    write_nifti(path, volume, affine)
    image = nib.load(path)
    assert np.allclose(image.affine, affine)
    assert np.allclose(image.header.get_zooms(), (0.8, 0.7, 2.5))
    assert image.get_data_dtype() == np.int16
    assert np.array_equal(np.asanyarray(image.dataobj), volume)
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")


def test_write_nifti_refuses_other_endings_and_bad_affines(tmp_path):
    with pytest.raises(ValueError, match=r"a\.nrrd: a NIfTI file name ends in \.nii or \.nii\.gz"):
        write_nifti(str(tmp_path / "a.nrrd"), np.zeros((2, 2, 2)), np.eye(4))
    with pytest.raises(ValueError, match="finite 4x4"):
        write_nifti(str(tmp_path / "a.nii"), np.zeros((2, 2, 2)), np.eye(3))


def test_file_sha256_equals_hashlib(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "w.bin").write_bytes(data)
    assert file_sha256(str(tmp_path / "w.bin")) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("image_class", [nib.Nifti1Image, nib.Nifti2Image])
def test_write_nifti_keeps_an_input_header(tmp_path, image_class):
    """A mask written with its input's header: qform/sform and their codes, units, description
    and NIfTI version kept; dtype the mask's; the input's intensity scaling not applied to it."""
    qform = np.array([[0, 0, -2.5, 90.0], [-0.7, 0, 0, 60.0], [0, 0.9, 0, -40.0], [0, 0, 0, 1]])
    sform = qform.copy()
    sform[:3, 3] += 0.25
    source = image_class(np.random.default_rng(0).random((4, 5, 3)).astype(np.float32), None)
    source.header.set_qform(qform, code=1)
    source.header.set_sform(sform, code=4)
    source.header.set_xyzt_units("mm", "msec")
    source.header["descrip"] = b"input"
    source.header.set_slope_inter(2.0, -1.0)
    source = image_class.from_bytes(source.to_bytes())  # as read from a file
    mask = (np.arange(60).reshape(4, 5, 3) % 2).astype(np.uint8)
    path = str(tmp_path / "mask.nii.gz")
    write_nifti(path, mask, source.affine, header=source.header)
    written = nib.load(path)
    assert type(written) is image_class and written.get_data_dtype() == np.uint8
    assert np.array_equal(np.asanyarray(written.dataobj), mask)
    np.testing.assert_allclose(written.affine, sform)
    np.testing.assert_allclose(written.header.get_qform(), qform, atol=1e-6)
    for key in ("qform_code", "sform_code", "xyzt_units", "descrip", "pixdim"):
        assert np.array_equal(written.header[key], source.header[key]), key
    with pytest.raises(ValueError, match="is not the header's"):
        write_nifti(path, mask, qform, header=source.header)
