"""DICOM as archives and scanners write it: compressed transfer syntaxes, colour, multi-frame
volumes, bare datasets without file meta. Files are written here (pydicom encodes RLE and JPEG
2000, OpenCV JPEG baseline) or taken from pydicom's bundled test corpus; pixel values are
compared with the array that was encoded or with an independent decoder."""
import os
import warnings

import cv2
import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import EnhancedCTImageStorage, JPEG2000Lossless, JPEGBaseline8Bit, RLELossless

import vertspine  # noqa: F401  (makes detectron2 importable)
from dicom_writer import write_dicom_file  # tests/ is on sys.path
from vertspine.data.image_io import read_dicom, read_image
from vertspine.data.readers import DicomReader, ImageReadError, read_image_and_meta, read_volume

CORPUS = os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")
SLOPE, INTERCEPT = 1.0, -1024.0
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def corpus(name):
    """A file of pydicom's bundled test corpus (present in every pydicom wheel)."""
    path = os.path.join(CORPUS, name)
    assert os.path.isfile(path), f"{name} is missing from pydicom's bundled test files"
    return path


def ct_stored(h=48, w=40, seed=0):
    """12-bit stored CT values (0..4095), so that Hounsfield units go negative."""
    return np.random.default_rng(seed).integers(0, 4096, size=(h, w)).astype(np.uint16)


def rewrite(path, out, **attributes):
    """Read ``path``, set ``attributes`` (PixelData given as an array is stored as bytes), save."""
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.save_as(out)
    return out


def rgb_image(h=24, w=30):
    """A smooth colour image with saturated corners (so a channel swap would show)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), 255 - x * 255 // (w - 1)],
                    axis=-1).astype(np.uint8)


def write_colour(path, pixels, photometric="RGB"):
    """An 8-bit colour Secondary Capture file (PlanarConfiguration 0) holding ``pixels``."""
    grey = write_dicom_file(path, np.zeros(pixels.shape[:2], np.uint16), modality="XC")
    ds = pydicom.dcmread(grey)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(path)
    return path


# --- compressed transfer syntaxes -------------------------------------------------------------

@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_lossless_compressed_gives_the_encoded_hounsfield_units(tmp_path, syntax):
    stored = ct_stored()
    path = write_dicom_file(str(tmp_path / "ct.dcm"), stored, bits_stored=12,
                            rescale=(SLOPE, INTERCEPT))
    ds = pydicom.dcmread(path)
    ds.compress(syntax)  # pydicom's RLE encoder / pylibjpeg-openjpeg
    ds.save_as(path)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    values, meta = read_image_and_meta(path)
    np.testing.assert_array_equal(values, stored * SLOPE + INTERCEPT)
    assert values.min() < 0 and meta.original_dtype == np.uint16 and meta.spatial_dims == 2


def test_jpeg_baseline_matches_an_independent_decoder(tmp_path):
    image = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (64, 48), np.uint8),
                             (5, 5), 0)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    path = write_dicom_file(str(tmp_path / "dx.dcm"), image.astype(np.uint16), modality="DX")
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([jpeg.tobytes()])
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(path)
    reference = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)  # libjpeg-turbo, not pylibjpeg
    values, _ = DicomReader().read(path)
    assert np.abs(values - reference.astype(np.float32)).max() <= 1  # IDCT rounding only
    assert np.abs(values - image.astype(np.float32)).mean() < 3  # and it is the encoded image


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
                                  "MR_small_jpeg_ls_lossless.dcm"])
def test_corpus_lossless_files_equal_their_uncompressed_original(name):
    original, _ = read_image_and_meta(corpus("MR_small.dcm"))
    values, meta = read_image_and_meta(corpus(name))
    np.testing.assert_array_equal(values, original)
    assert meta.spacing == read_image_and_meta(corpus("MR_small.dcm"))[1].spacing


def test_corpus_jpeg_lossless_colour_equals_the_rle_original_decoded_by_pydicom_itself():
    # reference: pydicom's own pure-Python RLE decoder, independent of the pylibjpeg plugins
    rle = pydicom.dcmread(corpus("SC_rgb_rle.dcm"))
    reference = pydicom.pixels.pixel_array(rle, decoding_plugin="pydicom")
    values, meta = read_image_and_meta(corpus("SC_rgb_jpeg_gdcm.dcm"))  # JPEG process 14, RGB
    assert meta.channel_order == "RGB" and values.dtype == np.uint8
    np.testing.assert_array_equal(values, reference)
    lossy, _ = read_image_and_meta(corpus("SC_rgb_jpeg_dcmtk.dcm"))  # baseline, YBR_FULL
    assert np.abs(lossy.astype(int) - reference).max() <= 8
    assert tuple(reference[0, 0]) == (255, 0, 0)  # red corner: channels in RGB order


def test_undecodable_pixel_data_names_the_file_and_the_decoders():
    with pytest.raises(ImageReadError, match=r"(?s)JPEG-lossy.dcm: cannot decode the DICOM pixel data"
                       r" \(transfer syntax 1.2.840.10008.1.2.4.51\).*pylibjpeg"):
        read_image_and_meta(corpus("JPEG-lossy.dcm"))


# --- colour -----------------------------------------------------------------------------------

def test_rgb_file_reads_as_rgb_and_as_bgr_on_the_detection_path(tmp_path):
    rgb = rgb_image()
    path = write_colour(str(tmp_path / "endoscopy.dcm"), rgb)
    values, meta = read_image_and_meta(path)
    assert values.dtype == np.uint8 and meta.channel_order == "RGB" and meta.spatial_dims == 2
    np.testing.assert_array_equal(values, rgb)
    np.testing.assert_array_equal(read_image(path, "BGR"), rgb[:, :, ::-1])
    np.testing.assert_array_equal(read_image(path, "RGB"), rgb)
    np.testing.assert_array_equal(read_dicom(path), rgb)


def test_ybr_full_is_converted_to_rgb(tmp_path):
    rgb = rgb_image()
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)  # OpenCV: full-range BT.601, as YBR_FULL
    ybr = ycrcb[:, :, [0, 2, 1]]  # DICOM order Y, Cb, Cr
    path = write_colour(str(tmp_path / "ybr.dcm"), ybr, photometric="YBR_FULL")
    values, meta = read_image_and_meta(path)
    assert meta.channel_order == "RGB"
    assert np.abs(values.astype(int) - rgb).max() <= 2  # 8-bit rounding of the two conversions


def test_palette_colour_goes_through_its_lookup_table(tmp_path):
    indices = (np.arange(20 * 16).reshape(20, 16) % 8).astype(np.uint8)
    rng = np.random.default_rng(2)
    luts = [rng.integers(0, 65536, 8).astype(np.uint16) for _ in range(3)]  # 16-bit entries
    path = write_dicom_file(str(tmp_path / "palette.dcm"), indices.astype(np.uint16))
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = indices.tobytes()
    for colour, lut in zip(("Red", "Green", "Blue"), luts):
        ds.add_new(tag_for_keyword(f"{colour}PaletteColorLookupTableDescriptor"), "US",
                   [8, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", lut.astype("<u2").tobytes())
    ds.save_as(path)
    values, meta = read_image_and_meta(path)
    expected = np.stack([lut[indices] for lut in luts], axis=-1)  # by hand: LUT[index]
    assert meta.channel_order == "RGB" and values.dtype == np.uint16
    np.testing.assert_array_equal(values, expected)


def test_colour_multiframe_corpus_file_is_a_colour_volume():
    volume, meta = read_image_and_meta(corpus("SC_rgb_rle_2frame.dcm"))
    first, _ = read_image_and_meta(corpus("SC_rgb_rle.dcm"))
    assert volume.shape == (100, 100, 2, 3) and meta.channel_order == "RGB"
    np.testing.assert_array_equal(volume[:, :, 0], first)
    np.testing.assert_array_equal(volume[:, :, 1], 255 - first)  # pydicom's file: inverted


# --- multi-frame volumes ----------------------------------------------------------------------

def functional_group(**macros):
    """A functional-groups item: {sequence keyword: {attribute: value}}."""
    group = pydicom.Dataset()
    for sequence, attributes in macros.items():
        item = pydicom.Dataset()
        for key, value in attributes.items():
            setattr(item, key, value)
        setattr(group, sequence, Sequence([item]))
    return group


def write_enhanced_ct(path, frames, positions, *, spacing=(0.6, 0.8), thickness=5.0,
                      orientation=(0, 1, 0, 0, 0, -1)):
    """An enhanced-CT-like multi-frame file: shared pixel measures, orientation and rescale,
    one ImagePositionPatient per frame (in the order given)."""
    h, w = frames[0].shape
    path = write_dicom_file(path, np.zeros((h, w), np.uint16), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(frames).astype("<u2").tobytes()
    ds.SharedFunctionalGroupsSequence = Sequence([functional_group(
        PixelMeasuresSequence={"PixelSpacing": list(spacing), "SliceThickness": thickness},
        PlaneOrientationSequence={"ImageOrientationPatient": list(orientation)},
        PixelValueTransformationSequence={"RescaleSlope": SLOPE, "RescaleIntercept": INTERCEPT,
                                          "RescaleType": "HU"})])
    ds.PerFrameFunctionalGroupsSequence = Sequence([functional_group(
        PlanePositionSequence={"ImagePositionPatient": list(p)}) for p in positions])
    ds.save_as(path)
    return path


def test_enhanced_multiframe_is_sorted_by_position_with_spacing_from_positions(tmp_path):
    # sagittal: rows run along LPS y (posterior), columns down (-z); normal = column x row
    row_dir, column_dir = np.array([0., 1., 0.]), np.array([0., 0., -1.])
    normal = np.cross(column_dir, row_dir)
    origin, gap = np.array([10.0, -20.0, 30.0]), 2.5  # slices 2.5 mm apart, SliceThickness 5
    stored_order = [2, 0, 3, 1]  # frames stored out of spatial order
    frames = [ct_stored(6, 7, seed=k) for k in stored_order]
    positions = [origin + k * gap * normal for k in stored_order]
    path = write_enhanced_ct(str(tmp_path / "enhanced.dcm"), frames, positions)
    volume, meta = read_volume(path)
    assert volume.shape == (6, 7, 4) and volume.dtype == np.float32 and meta.spatial_dims == 3
    for k in range(4):
        np.testing.assert_array_equal(volume[:, :, k], ct_stored(6, 7, seed=k) + INTERCEPT)
    np.testing.assert_allclose(meta.spacing, (0.6, 0.8, gap))  # from positions, not thickness
    for r, c, k in [(0, 0, 0), (5, 0, 2), (0, 6, 3), (3, 4, 1)]:  # by hand, LPS -> RAS
        lps = origin + k * gap * normal + r * 0.6 * column_dir + c * 0.8 * row_dir
        np.testing.assert_allclose(meta.affine @ [r, c, k, 1], LPS_TO_RAS @ [*lps, 1], atol=1e-9)


def test_enhanced_multiframe_with_a_missing_frame_is_an_error(tmp_path):
    normal = np.array([1.0, 0, 0])
    positions = [k * 2.0 * normal for k in (0, 1, 3)]
    path = write_enhanced_ct(str(tmp_path / "gap.dcm"), [ct_stored(4, 4)] * 3, positions)
    with pytest.raises(ImageReadError, match=r"gap.dcm: uneven slice spacing.*frame 2 and frame 3"):
        read_volume(path)


def test_multiframe_without_positions_is_stacked_in_stored_order(tmp_path):
    frames = [ct_stored(5, 6, seed=k) for k in range(3)]
    path = write_dicom_file(str(tmp_path / "cine.dcm"), frames[0], bits_stored=12,
                            pixel_spacing=(0.3, 0.4), slice_thickness=2.0)
    rewrite(path, path, NumberOfFrames=3, PixelData=np.stack(frames).astype("<u2").tobytes())
    volume, meta = read_volume(path)
    np.testing.assert_array_equal(np.moveaxis(volume, 2, 0), np.stack(frames))
    assert meta.spacing == (0.3, 0.4, 2.0)
    np.testing.assert_array_equal(meta.affine, np.diag([0.3, 0.4, 2.0, 1.0]))
    with pytest.raises(ImageReadError, match="cine.dcm: a 3D image"):
        read_image(path)  # the 2D uint8 path says it got a volume


def test_rt_dose_grid_is_a_volume_in_gray():
    path = corpus("rtdose.dcm")
    ds = pydicom.dcmread(path)
    volume, meta = read_volume(path)
    assert volume.shape == (ds.Rows, ds.Columns, ds.NumberOfFrames) == (10, 10, 15)
    # by hand: frame f lies at ImagePositionPatient + (offset_f - offset_0) along row x column
    # (+z for this axial grid); k runs along column x row (-z), so z decreases with k
    cosines = np.asarray([float(v) for v in ds.ImageOrientationPatient]).reshape(2, 3)
    assert np.allclose(cosines, [[1, 0, 0], [0, 1, 0]])
    offsets = np.asarray([float(v) for v in ds.GridFrameOffsetVector])
    z = float(ds.ImagePositionPatient[2]) + offsets - offsets[0]
    order = np.argsort(-z)
    gray = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    np.testing.assert_allclose(volume, np.moveaxis(gray[order], 0, 2), rtol=1e-6)
    step = abs(offsets[1] - offsets[0])
    assert meta.spacing == pytest.approx((*[float(v) for v in ds.PixelSpacing], step))
    x, y = float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1])
    np.testing.assert_allclose(meta.affine @ [0, 0, 0, 1], [-x, -y, z.max(), 1])
    np.testing.assert_allclose(meta.affine @ [0, 0, 1, 1], [-x, -y, z.max() - step, 1])


# --- bare datasets (no preamble, no file meta) ------------------------------------------------

@pytest.mark.parametrize("implicit_vr", [True, False], ids=["implicit", "explicit"])
def test_bare_dataset_is_read_with_its_inferred_transfer_syntax(tmp_path, implicit_vr):
    stored = ct_stored()
    path = write_dicom_file(str(tmp_path / "full.dcm"), stored, bits_stored=12,
                            rescale=(SLOPE, INTERCEPT), pixel_spacing=(0.5, 0.5))
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    bare = str(tmp_path / "old_archive.dcm")
    pydicom.dcmwrite(bare, ds, implicit_vr=implicit_vr, little_endian=True,
                     enforce_file_format=False)
    with open(bare, "rb") as f:
        assert f.read(132)[128:] != b"DICM"
    values, meta = read_image_and_meta(bare)
    np.testing.assert_array_equal(values, stored * SLOPE + INTERCEPT)
    assert meta.spacing == (0.5, 0.5)
    assert read_image(bare).shape == stored.shape + (3,)  # and on the 2D detection path


def test_bare_dataset_with_compressed_pixel_data_is_refused(tmp_path):
    path = write_dicom_file(str(tmp_path / "full.dcm"), ct_stored(), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    del ds.file_meta
    ds.preamble = None
    bare = str(tmp_path / "bare_rle.dcm")
    pydicom.dcmwrite(bare, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    with pytest.raises(ImageReadError, match="bare_rle.dcm: compressed .* no file meta"):
        read_image_and_meta(bare)


@pytest.mark.parametrize("content", [b"patient notes, not an image\n" * 20,
                                     bytes(np.random.default_rng(3).integers(0, 256, 3000,
                                                                           np.uint8))],
                         ids=["text", "random"])
def test_a_file_that_is_not_dicom_stays_a_clear_error(tmp_path, content):
    path = tmp_path / "scan.dcm"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="scan.dcm: not a readable DICOM file"):
        read_image_and_meta(str(path))
    with pytest.raises(ImageReadError, match="scan.dcm: not a readable DICOM file"):
        read_image(str(path))


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm",
                                  "rtstruct.dcm"])
def test_objects_without_an_image_are_refused_by_name(name):
    with pytest.raises(ImageReadError, match=f"{name}: DICOM file without pixel data"):
        read_image_and_meta(corpus(name))


def test_corpus_sweep_reads_every_image_file_but_the_broken_ones():
    """Every corpus file holding pixel data reads, except those the corpus keeps broken on
    purpose or that no installed decoder handles; their errors name them."""
    refused_on_purpose = {
        "JPEG-lossy.dcm",  # 12-bit lossy JPEG with a marker libjpeg rejects
        "JPEG2000-embedded-sequence-delimiter.dcm",  # corrupt codestream
        "MR_truncated.dcm", "badVR.dcm",  # truncated pixel data, invalid VR
        "meta_missing_tsyntax.dcm", "nested_priv_SQ.dcm",  # pixel data, no image attributes
    }
    read, refused = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(os.listdir(CORPUS)):
            path = os.path.join(CORPUS, name)
            if not name.endswith(".dcm"):
                continue
            try:
                ds = pydicom.dcmread(path, force=True)
            except Exception:
                continue
            if "PixelData" not in ds:
                continue
            try:
                read_image_and_meta(path)
                read.append(name)
            except ImageReadError as e:
                assert name in str(e)
                refused.append(name)
    assert set(refused) == refused_on_purpose
    assert len(read) >= 50  # 58 .dcm files of pydicom 3.0.2's corpus
