"""Tests of the DICOM readers: single file (modality values, geometry) and series folders."""
import os
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

import vertspine  # noqa: F401  (makes detectron2 importable)
from dicom_writer import write_dicom_file  # tests/ is on sys.path
from vertspine.data.readers import (
    DicomReader,
    DicomSeriesReader,
    ImageReadError,
    read_image_and_meta,
    read_volume,
)

with warnings.catch_warnings():  # nibabel warns that its DICOM wrappers are experimental
    warnings.simplefilter("ignore")
    from nibabel.nicom import dicomwrappers

H, W = 6, 7
SLOPE, INTERCEPT = 2, -1024
ROW_SPACING, COLUMN_SPACING, GAP = 0.7, 0.9, 2.5
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(z_degrees=20.0, x_degrees=15.0):
    """An oblique-ish rotation: about z, then about x; columns are the row/column/normal dirs."""
    a, b = np.radians(z_degrees), np.radians(x_degrees)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rx @ rz


ROTATION = rotation()
ORIENTATION = np.round(np.concatenate([ROTATION[:, 0], ROTATION[:, 1]]), 6)  # 16-char DS
ORIGIN = np.array([-120.5, 33.25, 70.0])
# the slice normal column direction x row direction: (row, column, slice) right-handed, as nibabel
NORMAL = np.cross(ORIENTATION[3:], ORIENTATION[:3])


def stored_slice(k):
    """Distinct stored values per slice: 100 k + pixel index."""
    return (100 * k + np.arange(H * W).reshape(H, W)).astype(np.uint16)


def write_series(folder, n=5, *, names=None, positions=None, series_uids=None, sizes=None,
                 seed=0):
    """Write ``n`` slices at ORIGIN + k GAP normal, under shuffled file names.

    Returns:
        {k: path} of slice k (in position order).
    """
    order = np.random.default_rng(seed).permutation(n)
    names = names or [f"IM{int(i):04d}.dcm" for i in order]
    series = pydicom.uid.generate_uid()
    paths = {}
    for k in range(n):
        position = ORIGIN + k * GAP * NORMAL if positions is None else positions[k]
        shape = sizes[k] if sizes else (H, W)
        stored = stored_slice(k) if shape == (H, W) else np.zeros(shape, np.uint16)
        paths[k] = write_dicom_file(
            os.path.join(folder, names[k]), stored, rescale=(SLOPE, INTERCEPT),
            pixel_spacing=(ROW_SPACING, COLUMN_SPACING), orientation=ORIENTATION,
            position=np.round(position, 5), slice_thickness=GAP,
            series_uid=series_uids[k] if series_uids else series)
    return paths


def test_single_file_modality_values_and_geometry(tmp_path):
    stored = stored_slice(3)
    path = write_dicom_file(str(tmp_path / "ct.dcm"), stored, rescale=(SLOPE, INTERCEPT),
                            window=(-380, 60), pixel_spacing=(ROW_SPACING, COLUMN_SPACING),
                            orientation=ORIENTATION, position=ORIGIN, slice_thickness=GAP)
    values, meta = read_image_and_meta(path)
    # modality LUT applied, the window (VOI) not: real Hounsfield units, negative ones kept
    assert values.dtype == np.float32 and values.shape == (H, W)
    np.testing.assert_array_equal(values, stored.astype(np.float32) * SLOPE + INTERCEPT)
    assert values.min() == -424  # 300 * 2 - 1024: negative Hounsfield units kept
    assert meta.spacing == (ROW_SPACING, COLUMN_SPACING) and meta.spatial_dims == 2
    assert meta.original_dtype == np.uint16 and meta.source == path
    # index (row, column) affine = nibabel's DICOM wrapper (LPS) converted to RAS
    nib_affine = dicomwrappers.wrapper_from_data(pydicom.dcmread(path)).affine
    np.testing.assert_allclose(meta.affine, LPS_TO_RAS @ nib_affine, atol=1e-6)
    ds = pydicom.dcmread(path)  # apply_voi: pydicom's window on the modality values
    windowed = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    assert len(np.unique(windowed)) > 10
    np.testing.assert_array_equal(DicomReader(apply_voi=True).read(path)[0],
                                  windowed.astype(np.float32))


def test_single_file_without_geometry_gets_scaling_affine(tmp_path):
    path = write_dicom_file(str(tmp_path / "xray.dcm"), stored_slice(0))
    _, meta = DicomReader().read(path)
    assert meta.spacing == (1.0, 1.0) and np.array_equal(meta.affine, np.eye(4))
    assert meta.orientation == "RA"


def test_series_order_spacing_and_affine(tmp_path):
    paths = write_series(str(tmp_path / "series"))
    volume, meta = read_volume(str(tmp_path / "series"))
    assert volume.dtype == np.float32 and volume.shape == (H, W, 5)
    for k in range(5):  # slice k of the array is the file at the k-th position
        hounsfield = stored_slice(k).astype(np.float32) * SLOPE + INTERCEPT
        np.testing.assert_array_equal(volume[:, :, k], hounsfield)
    assert volume.min() == -1024
    np.testing.assert_allclose(meta.spacing, (ROW_SPACING, COLUMN_SPACING, GAP), atol=1e-5)
    # by hand: world(r, c, k) = position_k + r * row spacing * column dir + c * column spacing
    # * row dir (LPS), then x, y negated
    rows, columns = ORIENTATION[:3], ORIENTATION[3:]
    for r, c, k in [(0, 0, 0), (H - 1, 0, 2), (0, W - 1, 4), (3, 5, 1)]:
        position = np.asarray(pydicom.dcmread(paths[k]).ImagePositionPatient, float)
        lps = position + r * ROW_SPACING * columns + c * COLUMN_SPACING * rows
        np.testing.assert_allclose(meta.affine @ [r, c, k, 1], [-lps[0], -lps[1], lps[2], 1],
                                   atol=1e-4)
    # and nibabel's wrapper of the first slice (its slice step is SliceThickness = GAP)
    nib_affine = dicomwrappers.wrapper_from_data(pydicom.dcmread(paths[0])).affine
    np.testing.assert_allclose(meta.affine, LPS_TO_RAS @ nib_affine, atol=1e-4)
    assert meta.orientation == "".join(nib.aff2axcodes(meta.affine))
    assert meta.source == str(tmp_path / "series") and meta.original_dtype == np.uint16


def test_series_spacing_comes_from_positions_not_slice_thickness(tmp_path):
    paths = write_series(str(tmp_path / "series"), n=4)
    for path in paths.values():  # overlapping slices: 5 mm thick, GAP = 2.5 mm apart
        ds = pydicom.dcmread(path)
        ds.SliceThickness = 5.0
        ds.save_as(path)
    volume, meta = read_volume(str(tmp_path / "series"))
    assert volume.shape == (H, W, 4)
    assert meta.spacing[2] == pytest.approx(GAP, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(meta.affine[:3, 2]), GAP, atol=1e-5)


def test_series_ignores_non_dicom_files(tmp_path):
    write_series(str(tmp_path), n=3)
    (tmp_path / "README.txt").write_text("scanner notes")
    (tmp_path / ".DS_Store").write_bytes(b"\0" * 10)
    assert DicomSeriesReader().read(str(tmp_path))[0].shape == (H, W, 3)


def test_series_of_one_slice_uses_slice_thickness(tmp_path):
    write_series(str(tmp_path), n=1)
    volume, meta = read_volume(str(tmp_path))
    assert volume.shape == (H, W, 1)
    np.testing.assert_allclose(meta.spacing[2], GAP)


def test_series_with_two_series_uids(tmp_path):
    write_series(str(tmp_path), n=4, series_uids=["1.2.3", "1.2.3", "1.2.4", "1.2.4"])
    with pytest.raises(ImageReadError, match=r"2 series.*1\.2\.3: 2 files.*1\.2\.4: 2 files.*own "
                                             "folder"):
        read_volume(str(tmp_path))


def test_series_with_a_missing_slice(tmp_path):
    paths = write_series(str(tmp_path), n=5)
    os.remove(paths[2])
    name1, name3 = os.path.basename(paths[1]), os.path.basename(paths[3])
    with pytest.raises(ImageReadError, match=rf"uneven slice spacing.*2\.5 mm apart.*5 mm "
                                             rf"between {name1} and {name3}.*missing"):
        read_volume(str(tmp_path))


def test_series_with_duplicated_position(tmp_path):
    positions = [ORIGIN + k * GAP * NORMAL for k in (0, 1, 1, 2)]
    write_series(str(tmp_path), n=4, positions=positions)
    with pytest.raises(ImageReadError, match="same position.*one slice per position"):
        read_volume(str(tmp_path))


def test_series_with_slices_of_different_sizes(tmp_path):
    write_series(str(tmp_path), n=3, names=["a.dcm", "b.dcm", "c.dcm"],
                 sizes=[(H, W), (H, W), (H + 1, W)])
    with pytest.raises(ImageReadError, match=r"different sizes.*\(6, 7\): \['a.dcm', 'b.dcm'\].*"
                                             r"\(7, 7\): \['c.dcm'\]"):
        read_volume(str(tmp_path))


def test_series_without_geometry(tmp_path):
    write_dicom_file(str(tmp_path / "a.dcm"), stored_slice(0))
    with pytest.raises(ImageReadError, match="a.dcm: no ImageOrientationPatient"):
        read_volume(str(tmp_path))


def test_empty_folder_and_corrupt_slice(tmp_path):
    with pytest.raises(ImageReadError, match="no DICOM file"):
        read_volume(str(tmp_path))
    write_series(str(tmp_path), n=2)
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 64)
    with pytest.raises(ImageReadError, match="broken.dcm: not a readable DICOM"):
        read_volume(str(tmp_path))


def test_single_file_is_not_a_volume(tmp_path):
    path = write_dicom_file(str(tmp_path / "one.dcm"), stored_slice(0))
    with pytest.raises(ImageReadError, match="one.dcm: a 2D image.*not a 3D volume"):
        read_volume(path)
