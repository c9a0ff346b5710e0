"""Tests of vertspine.data.image_io: the uint8 [H, W, C] convention for every source."""
import cv2
import numpy as np
import pydicom
import pytest
from PIL import Image, ImageOps

import vertspine  # noqa: F401  (makes detectron2 importable)
from dicom_writer import write_dicom_file  # tests/ is on sys.path
from vertspine.data.image_io import (
    ImageReadError,
    min_max_to_uint8,
    read_dicom,
    read_image,
    to_three_channels,
)

H, W = 32, 48
# DICOM test data: stored values 0, 3, ..., 4605 -> rescaled 2 * s - 1024 in [-1024, 8186]
STORED = (np.arange(H * W).reshape(H, W) * 3).astype(np.uint16)
SLOPE, INTERCEPT = 2, -1024
CENTER, WIDTH = 1000, 2001


def write_dicom(path, stored=STORED, *, photometric="MONOCHROME2", rescale=True, window=True,
                pixels=True):
    """Write a single-frame uint16 CT DICOM file (with preamble) and return its path."""
    return write_dicom_file(path, stored, photometric=photometric, modality="CT",
                            rescale=(SLOPE, INTERCEPT) if rescale else None,
                            window=(CENTER, WIDTH) if window else None, pixels=pixels)


def expected_windowed_uint8(stored=STORED):
    """By hand: rescale, linear window (PS3.3 C.11.2.1.2.1) to [0, 1], then 0..255 half up.

    The stored values reach below and above the window, so the window output spans [0, 1]
    and the final min-max is the identity on it.
    """
    x = stored.astype(np.float64) * SLOPE + INTERCEPT
    t = np.clip((x - (CENTER - 0.5)) / (WIDTH - 1) + 0.5, 0.0, 1.0)
    return np.floor(t * 255 + 0.5).astype(np.uint8)


def colour_rgb():
    """An RGB uint8 [H, W, 3] image with different, known values in each channel."""
    a = (np.arange(H * W).reshape(H, W) % 251).astype(np.uint8)
    return np.stack([a, 255 - a, a // 2], axis=-1)


def test_png_8bit_gray_is_repeated_into_three_channels(tmp_path):
    gray = (np.arange(H * W).reshape(H, W) % 256).astype(np.uint8)
    path = str(tmp_path / "gray.png")
    cv2.imwrite(path, gray)
    for fmt in ("BGR", "RGB"):
        image = read_image(path, fmt)
        assert image.dtype == np.uint8 and image.shape == (H, W, 3)
        assert all(np.array_equal(image[:, :, c], gray) for c in range(3))
    assert np.array_equal(read_image(path, "L"), gray[:, :, None])


def test_png_8bit_colour_channel_order(tmp_path):
    rgb = colour_rgb()
    path = str(tmp_path / "colour.png")
    cv2.imwrite(path, rgb[:, :, ::-1])  # OpenCV writes BGR
    assert np.array_equal(read_image(path, "RGB"), rgb)
    assert np.array_equal(read_image(path, "BGR"), rgb[:, :, ::-1])
    assert np.array_equal(read_image(path), rgb[:, :, ::-1])  # BGR by default
    expected_l = np.asarray(Image.fromarray(rgb).convert("L"))  # BT.601 luma
    assert np.abs(read_image(path, "L")[:, :, 0].astype(int) - expected_l).max() <= 1


@pytest.mark.parametrize("extension", [".png", ".tif"])
def test_16bit_gray_min_max_rule(tmp_path, extension):
    values = np.array([[1000, 1100], [2900, 5000]], dtype=np.uint16)
    image16 = np.kron(values, np.ones((H // 2, W // 2), dtype=np.uint16))
    path = str(tmp_path / f"gray16{extension}")
    cv2.imwrite(path, image16)
    # floor((v - 1000) * 255 / 4000 + 0.5): 0, 6.375 -> 6, 121.125 -> 121, 255
    expected = np.kron(np.array([[0, 6], [121, 255]], np.uint8), np.ones((H // 2, W // 2)))
    image = read_image(path, "RGB")
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    assert np.array_equal(image[:, :, 0], expected) and np.array_equal(image[:, :, 2], expected)


def test_png_16bit_colour_is_scaled_jointly(tmp_path):
    bgr16 = np.zeros((H, W, 3), np.uint16)
    bgr16[..., 0], bgr16[..., 1], bgr16[..., 2] = 400, 2400, 4400  # B, G, R
    bgr16[0, 0] = 0  # the joint minimum
    path = str(tmp_path / "colour16.png")
    cv2.imwrite(path, bgr16)
    rgb = read_image(path, "RGB")
    # floor(v * 255 / 4400 + 0.5): 400 -> 23.18 -> 23, 2400 -> 139.09 -> 139, 4400 -> 255
    assert rgb[5, 5].tolist() == [255, 139, 23]
    assert rgb[0, 0].tolist() == [0, 0, 0]


def test_float_tiff_with_nan_is_rejected(tmp_path):
    values = np.ones((H, W), np.float32)
    values[3, 4] = np.nan
    path = str(tmp_path / "float.tif")
    cv2.imwrite(path, values)
    with pytest.raises(ImageReadError, match="float.tif.*NaN"):
        read_image(path)


def test_min_max_to_uint8_rule():
    assert min_max_to_uint8(np.array([2.0, 3.0, 4.0])).tolist() == [0, 128, 255]  # 127.5 up
    assert min_max_to_uint8(np.full((2, 2), 7.0)).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match="NaN"):
        min_max_to_uint8(np.array([0.0, np.nan]))


def test_to_three_channels_shapes():
    gray = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for source in (gray, gray[:, :, None]):
        out = to_three_channels(source)
        assert out.shape == (2, 3, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def test_jpeg_within_tolerance(tmp_path):
    rgb = np.repeat(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], H, axis=0)
    rgb = np.concatenate([rgb, 255 - rgb, np.full_like(rgb, 90)], axis=2)
    path = str(tmp_path / "smooth.jpg")
    cv2.imwrite(path, rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    image = read_image(path, "RGB")
    assert image.shape == (H, W, 3)
    assert np.abs(image.astype(int) - rgb).mean() < 3


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    path = str(tmp_path / f"oriented{orientation}.png")
    exif = Image.Exif()
    exif[274] = orientation
    Image.fromarray(colour_rgb()).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(read_image(path, "RGB"), expected)


def test_exif_orientation_jpeg(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    exif = Image.Exif()
    exif[274] = 6  # displayed rotated 90 degrees clockwise
    Image.fromarray(colour_rgb()).save(path, exif=exif, quality=95)
    image = read_image(path, "RGB")
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert image.shape == (W, H, 3)
    assert np.abs(image.astype(int) - expected).mean() < 2


def test_dicom_rescale_and_window(tmp_path):
    path = write_dicom(str(tmp_path / "ct.dcm"))
    image = read_image(path, "BGR")
    assert image.dtype == np.uint8 and image.shape == (H, W, 3)
    expected = expected_windowed_uint8()
    assert np.array_equal(image[:, :, 0], expected) and np.array_equal(image[:, :, 1], expected)
    assert expected.min() == 0 and expected.max() == 255 and len(np.unique(expected)) > 200
    assert np.array_equal(read_image(path, "L")[:, :, 0], expected)


def test_read_dicom_float_values(tmp_path):
    path = write_dicom(str(tmp_path / "ct.dcm"))
    modality = read_dicom(path, apply_voi=False)
    assert modality.dtype == np.float32 and modality.shape == (H, W)
    assert np.array_equal(modality, STORED.astype(np.float32) * SLOPE + INTERCEPT)
    windowed = read_dicom(path)
    np.testing.assert_allclose(min_max_to_uint8(windowed), expected_windowed_uint8())


def test_dicom_monochrome1_is_inverted(tmp_path):
    path = write_dicom(str(tmp_path / "cr.dcm"), photometric="MONOCHROME1")
    assert np.array_equal(read_image(path, "RGB")[:, :, 0], 255 - expected_windowed_uint8())


def test_dicom_without_window_uses_min_max_of_rescaled(tmp_path):
    path = write_dicom(str(tmp_path / "plain.dcm"), window=False)
    # rescaled = 2 * s - 1024 with s = 3k, k = 0..1535: min-max gives floor(255 k / 1535 + 0.5)
    k = np.arange(H * W).reshape(H, W)
    expected = np.floor(255 * k / 1535 + 0.5).astype(np.uint8)
    assert np.array_equal(read_image(path, "RGB")[:, :, 1], expected)


def test_dicom_detected_by_preamble_without_extension(tmp_path):
    path = write_dicom(str(tmp_path / "scan_0001"))
    assert np.array_equal(read_image(path)[:, :, 0], expected_windowed_uint8())


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(path)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_dicom(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "truncated.png"
    cv2.imwrite(str(path), colour_rgb())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="truncated.png.*cannot decode"):
        read_image(str(path))


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match="notes.png"):
        read_image(str(path))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.jpg.*empty"):
        read_image(str(path))


def test_dicom_without_pixel_data(tmp_path):
    path = write_dicom(str(tmp_path / "report.dcm"), pixels=False)
    with pytest.raises(ImageReadError, match="report.dcm.*without pixel data"):
        read_image(path)


def test_dcm_extension_but_not_dicom(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ImageReadError, match="fake.dcm.*not a readable DICOM"):
        read_image(str(path))


def test_colour_dicom_is_rejected(tmp_path):
    path = write_dicom(str(tmp_path / "rgb.dcm"), window=False, rescale=False)
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "RGB"
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="rgb.dcm.*'RGB'"):
        read_image(path)


def test_unsupported_format(tmp_path):
    with pytest.raises(ValueError, match="YUV"):
        read_image(str(tmp_path / "x.png"), "YUV-BT.601")


def test_read_image_is_reader_then_to_display_uint8(tmp_path):
    from vertspine.data.image_io import to_display_uint8
    from vertspine.data.readers import RasterReader, read_image_and_meta

    values = np.array([[1000, 1100], [2900, 5000]], dtype=np.uint16)
    path = str(tmp_path / "gray16.png")
    cv2.imwrite(path, values)
    array, meta = read_image_and_meta(path)  # the real values stay 16 bit
    assert array.dtype == np.uint16 and np.array_equal(array, values)
    expected = np.array([[0, 6], [121, 255]], np.uint8)  # as test_16bit_gray_min_max_rule
    assert np.array_equal(to_display_uint8(array, meta, "L")[:, :, 0], expected)
    assert np.array_equal(read_image(path, "L")[:, :, 0], expected)
    rgb_path = str(tmp_path / "colour.png")
    cv2.imwrite(rgb_path, colour_rgb()[:, :, ::-1])
    array, meta = RasterReader().read(rgb_path)
    assert np.array_equal(array, colour_rgb()) and meta.channel_order == "RGB"
    for fmt in ("BGR", "RGB", "L"):
        assert np.array_equal(to_display_uint8(array, meta, fmt), read_image(rgb_path, fmt))


def test_dicom_real_values_and_display_values(tmp_path):
    from vertspine.data.readers import read_image_and_meta

    path = write_dicom(str(tmp_path / "cr.dcm"), photometric="MONOCHROME1")
    hounsfield, meta = read_image_and_meta(path)  # no window, no inversion: modality values
    assert np.array_equal(hounsfield, STORED.astype(np.float32) * SLOPE + INTERCEPT)
    assert meta.original_dtype == np.uint16
    assert np.array_equal(read_image(path, "L")[:, :, 0], 255 - expected_windowed_uint8())


def test_to_display_uint8_rejects_volumes(tmp_path):
    import nibabel as nib

    from vertspine.data.image_io import to_display_uint8
    from vertspine.data.readers import read_volume

    path = str(tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.eye(4)), path)
    volume, meta = read_volume(path)
    with pytest.raises(ImageReadError, match="ct.nii.gz: a 3D image.*read_volume"):
        to_display_uint8(volume, meta)
    with pytest.raises(ImageReadError, match="ct.nii.gz: cannot decode"):
        read_image(path)  # the 2D path decodes rasters and DICOM only, as before


def test_image_read_error_is_the_readers_one():
    from vertspine.data import readers

    assert ImageReadError is readers.ImageReadError and issubclass(ImageReadError, ValueError)
