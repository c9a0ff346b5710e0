"""Tests of vertspine.data.readers: the registry, raster, NIfTI and NumPy readers."""
import gzip
import io

import cv2
import nibabel as nib
import numpy as np
import pytest
from PIL import Image, ImageOps

import vertspine  # noqa: F401  (makes detectron2 importable)
from dicom_writer import write_dicom_file  # tests/ is on sys.path
from vertspine.data.readers import (
    READERS,
    DicomReader,
    DicomSeriesReader,
    ImageReadError,
    ImageReader,
    NiftiReader,
    NpyReader,
    NpzReader,
    RasterReader,
    read_image_and_meta,
    read_volume,
    reader_for,
    register_reader,
    supported_endings,
)

# a CT-like volume: oblique, anisotropic (0.8 x 0.7 x 2.5 mm), Hounsfield values down to -1024
CT_AFFINE = np.array([
    [0.0, 0.0, -2.5, 10.0],
    [0.8, 0.0, 0.0, -20.0],
    [0.0, -0.7, 0.0, 5.0],
    [0.0, 0.0, 0.0, 1.0],
])
CT = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 37 - 1024).astype(np.int16)


def write_ct(path, array=CT, affine=CT_AFFINE):
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return str(path)


@pytest.mark.parametrize("name, reader", [
    ("a.png", RasterReader), ("a.JPG", RasterReader), ("a.jpeg", RasterReader),
    ("a.tif", RasterReader), ("a.tiff", RasterReader), ("a.bmp", RasterReader),
    ("a.dcm", DicomReader), ("a.dicom", DicomReader), ("a.nii", NiftiReader),
    ("a.nii.gz", NiftiReader), ("a.npy", NpyReader), ("a.npz", NpzReader),
])
def test_reader_by_ending(tmp_path, name, reader):
    (tmp_path / name).write_bytes(b"x")
    assert reader_for(str(tmp_path / name)) is reader


def test_reader_for_folder_and_preamble(tmp_path):
    assert reader_for(str(tmp_path)) is DicomSeriesReader
    path = write_dicom_file(str(tmp_path / "IM0001"), np.zeros((2, 2), np.uint16))
    assert reader_for(path) is DicomReader


def test_unknown_ending_lists_the_supported_ones(tmp_path):
    (tmp_path / "scan.mha").write_bytes(b"not read")
    with pytest.raises(ImageReadError, match=r"scan.mha: no reader.*\.nii\.gz.*\.npz.*DICOM"):
        read_image_and_meta(str(tmp_path / "scan.mha"))
    assert supported_endings() == (".bmp", ".dcm", ".dicom", ".jpeg", ".jpg", ".nii",
                                   ".nii.gz", ".npy", ".npz", ".png", ".tif", ".tiff")


def test_missing_file(tmp_path):
    for name in ("gone.nii.gz", "gone.npy", "gone.png"):
        with pytest.raises(FileNotFoundError, match=name):
            read_image_and_meta(str(tmp_path / name))


def test_register_reader_rejects_taken_endings():
    class Other(ImageReader):
        name, endings = "other_nifti", (".nii",)

    with pytest.raises(ValueError, match=r"\['.nii'\] are already read by \['nifti'\]"):
        register_reader(Other)
    assert "other_nifti" not in READERS


def test_png_16bit_keeps_values(tmp_path):
    values = (np.arange(6 * 9).reshape(6, 9) * 1000 + 7).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "xray.png"), values)
    array, meta = read_image_and_meta(str(tmp_path / "xray.png"))
    assert array.dtype == np.uint16 and np.array_equal(array, values)
    assert meta.original_dtype == np.uint16 and meta.spatial_dims == 2
    assert meta.spacing == (1.0, 1.0) and np.array_equal(meta.affine, np.eye(4))
    assert meta.channel_order is None and meta.orientation == "RA"


def test_colour_png_is_rgb_with_exif_applied(tmp_path):
    rgb = np.stack([np.full((4, 6), v, np.uint8) for v in (10, 120, 250)], axis=-1)
    rgb[0, 0] = (1, 2, 3)
    exif = Image.Exif()
    exif[274] = 6  # displayed rotated 90 degrees clockwise
    Image.fromarray(rgb).save(tmp_path / "photo.png", exif=exif)
    array, meta = RasterReader().read(str(tmp_path / "photo.png"))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "photo.png")))
    assert array.shape == (6, 4, 3) and np.array_equal(array, expected)
    assert meta.channel_order == "RGB" and meta.original_dtype == np.uint8


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii"])
def test_nifti_matches_nibabel(tmp_path, name):
    path = write_ct(tmp_path / name)
    volume, meta = read_volume(path)
    reference = nib.load(path)
    assert volume.dtype == np.int16 and np.array_equal(volume, CT)
    assert volume.min() == -1024
    np.testing.assert_array_equal(meta.affine, reference.affine)
    assert meta.spacing == tuple(float(z) for z in reference.header.get_zooms())
    np.testing.assert_allclose(meta.spacing, (0.8, 0.7, 2.5), rtol=1e-6)
    assert meta.orientation == "".join(nib.aff2axcodes(reference.affine)) == "AIL"
    assert meta.original_dtype == np.int16 and meta.spatial_dims == 3 and meta.source == path


def test_nifti_scaling_gives_float_values(tmp_path):
    image = nib.Nifti1Image(CT, CT_AFFINE)
    image.header.set_slope_inter(0.5, -100)
    nib.save(image, str(tmp_path / "scaled.nii.gz"))
    volume, meta = read_volume(str(tmp_path / "scaled.nii.gz"))
    np.testing.assert_allclose(volume, CT * 0.5 - 100)
    assert volume.dtype.kind == "f" and meta.original_dtype == np.int16


def patch_header(path, edit):
    """Rewrite the NIfTI-1 header of an uncompressed ``.nii`` after ``edit(header)``."""
    data = bytearray(open(path, "rb").read())
    header = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(data)), check=False)
    edit(header)
    data[:348] = header.binaryblock
    open(path, "wb").write(bytes(data))


def test_nifti_zero_spacing(tmp_path):
    path = write_ct(tmp_path / "flat.nii")

    def zero_pixdim(header):
        header["pixdim"][2] = 0.0
        header["qform_code"] = header["sform_code"] = 0

    patch_header(path, zero_pixdim)
    with pytest.raises(ImageReadError, match=r"flat.nii: voxel spacing \(0.8.*0.0.*pixdim"):
        read_volume(path)  # nibabel alone would load it with 1 mm


def test_nifti_singular_affine(tmp_path):
    path = write_ct(tmp_path / "singular.nii")

    def drop_axis(header):
        header["srow_z"][1] = 0.0  # column j of the sform becomes 0
        header["qform_code"] = 0

    patch_header(path, drop_axis)
    with pytest.raises(ImageReadError, match="singular.nii: the affine .* is singular"):
        read_volume(path)


def test_nifti_truncated_and_4d(tmp_path):
    path = write_ct(tmp_path / "cut.nii.gz")
    raw = gzip.decompress(open(path, "rb").read())
    open(path, "wb").write(gzip.compress(raw[:-40]))
    with pytest.raises(ImageReadError, match="cut.nii.gz: not a readable NIfTI"):
        read_volume(path)
    path = write_ct(tmp_path / "multi.nii.gz", np.zeros((2, 2, 2, 3), np.float32))
    with pytest.raises(ImageReadError, match=r"multi.nii.gz: .*\(2, 2, 2, 3\).*_0000"):
        read_volume(path)


def test_npy_spacing_default_and_given(tmp_path):
    values = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    np.save(tmp_path / "img.npy", values)
    volume, meta = read_volume(str(tmp_path / "img.npy"))
    assert np.array_equal(volume, values) and volume.dtype == np.float32
    assert meta.spacing == (1.0, 1.0, 1.0) and np.array_equal(meta.affine, np.eye(4))
    _, meta = read_volume(str(tmp_path / "img.npy"), spacing=(2, 1, 0.5))
    assert meta.spacing == (2.0, 1.0, 0.5)
    np.testing.assert_array_equal(meta.affine, np.diag([2, 1, 0.5, 1]))
    with pytest.raises(ImageReadError, match=r"img.npy: voxel spacing \(1.0, -1.0, 1.0\)"):
        read_volume(str(tmp_path / "img.npy"), spacing=(1, -1, 1))


def test_npy_bad_content(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="obj.npy: not a readable NumPy file.*pickle"):
        read_image_and_meta(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "four.npy", np.zeros((1, 2, 3, 4)))
    with pytest.raises(ImageReadError, match=r"four.npy: .*4D float64.*single-channel 2D or 3D"):
        read_image_and_meta(str(tmp_path / "four.npy"))


def test_npz_3d_case_spacing_is_reversed(tmp_path):
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)  # (D, H, W)
    gts = (imgs % 3).astype(np.uint8)
    np.savez_compressed(tmp_path / "CT_case.npz", imgs=imgs, gts=gts,
                        spacing=np.array([0.7, 0.8, 5.0]))  # SimpleITK (x, y, z)
    volume, meta = read_volume(str(tmp_path / "CT_case.npz"))
    assert np.array_equal(volume, imgs) and meta.spacing == (5.0, 0.8, 0.7)
    labels, label_meta = read_volume(str(tmp_path / "CT_case.npz"), key="gts")
    assert np.array_equal(labels, gts) and label_meta.spacing == (5.0, 0.8, 0.7)


def test_npz_2d_case_is_rgb(tmp_path):
    imgs = np.zeros((5, 6, 3), np.uint8)
    imgs[..., 0] = 200
    np.savez_compressed(tmp_path / "Dermoscopy.npz", imgs=imgs, gts=np.ones((5, 6), np.uint8))
    image, meta = read_image_and_meta(str(tmp_path / "Dermoscopy.npz"))
    assert image.shape == (5, 6, 3) and meta.channel_order == "RGB" and meta.spatial_dims == 2
    labels, label_meta = read_image_and_meta(str(tmp_path / "Dermoscopy.npz"), key="gts")
    assert labels.shape == (5, 6) and label_meta.spacing == (1.0, 1.0)
    with pytest.raises(ImageReadError, match="Dermoscopy.npz: a 2D image"):
        read_volume(str(tmp_path / "Dermoscopy.npz"))


def test_npz_missing_key_and_bad_option(tmp_path):
    np.savez(tmp_path / "only_imgs.npz", imgs=np.zeros((2, 3, 4)))
    with pytest.raises(ImageReadError, match=r"only_imgs.npz: no array 'gts'.*\['imgs'\]"):
        read_volume(str(tmp_path / "only_imgs.npz"), key="gts")
    with pytest.raises(ValueError, match="key 'labels'"):
        NpzReader(key="labels")
    with pytest.raises(TypeError):
        read_volume(str(tmp_path / "only_imgs.npz"), spacing=(1, 1, 1))
