"""tools/segment_vessels.py end to end: a folder of NIfTI and .npy volumes (oblique affine,
anisotropic spacing, sform/qform codes) and bad cases, with a tiny randomly initialised
VesselSegmentor whose weights the test saves."""
import gzip
import logging
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

from conftest import REPO_ROOT, load_script
from vertspine.config import get_vertspine_cfg
from vertspine.data.readers import read_volume
from vertspine.data.volume_mapper import VolumeMapper
from vertspine.utils.state_dict import CheckpointReadError

BASE = os.path.join(REPO_ROOT, "configs", "segmentation", "dynunet_sigmoid_3d_instant_test.yaml")
CONFIG = f"""_BASE_: "{BASE}"
MODEL:
  META_ARCHITECTURE: "VesselSegmentor"
INPUT:
  VOLUME:
    ORIENTATION: ""
    INTENSITY:
      MODE: "percentiles"
      PERCENTILES: (1.0, 99.0)
"""


def _tool():
    return load_script("tools/segment_vessels.py", "segment_vessels")


def _oblique_affine():
    """Rotation about z then x, spacing (0.7, 0.9, 2.5) mm, an origin off zero."""
    a, b = np.deg2rad(20.0), np.deg2rad(-35.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rz @ rx @ np.diag([0.7, 0.9, 2.5])
    affine[:3, 3] = [-41.5, 12.25, 80.0]
    return affine


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Config, saved random weights, and an input folder: 4 good cases and 4 bad ones."""
    root = tmp_path_factory.mktemp("vessels")
    config = root / "vessel_tiny.yaml"
    config.write_text(CONFIG)
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(str(config))
    torch.manual_seed(0)
    weights = str(root / "tiny.pth")
    torch.save({"model": build_model(cfg).state_dict()}, weights)

    rng = np.random.default_rng(0)
    inputs = root / "inputs"
    inputs.mkdir()
    oblique = nib.Nifti1Image(rng.normal(100, 30, (20, 16, 12)).astype(np.float32), None)
    oblique.header.set_qform(_oblique_affine(), code=1)
    oblique.header.set_sform(_oblique_affine() @ np.diag([1, 1, 1, 1.0]), code=2)
    oblique.header.set_xyzt_units("mm", "sec")
    oblique.header["descrip"] = b"oblique test volume"
    nib.save(oblique, str(inputs / "a_oblique.nii.gz"))
    flipped = np.diag([-1.2, 0.8, 1.6, 1.0])
    flipped[:3, 3] = [30.0, -20.0, 5.0]
    qform_only = nib.Nifti1Image(rng.integers(-200, 800, (16, 18, 16)).astype(np.int16), None)
    qform_only.header.set_qform(flipped, code=2)
    qform_only.header.set_sform(np.eye(4), code=0)
    nib.save(qform_only, str(inputs / "b_qform.nii"))
    np.save(inputs / "c_array.npy", rng.random((16, 16, 16)).astype(np.float32))
    (inputs / "h_case").mkdir()  # vesselFM's <case>/img.npy layout
    np.save(inputs / "h_case" / "img.npy", rng.random((16, 16, 20)).astype(np.float32))

    nib.save(nib.Nifti1Image(np.zeros((16, 16, 16), np.float32), np.eye(4)),
             str(inputs / "d_zero.nii.gz"))
    nan = rng.random((16, 16, 16)).astype(np.float32)
    nan[3, 4, 5] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(inputs / "e_nan.nii.gz"))
    nib.save(nib.Nifti1Image(rng.random((16, 16)).astype(np.float32), np.eye(4)),
             str(inputs / "f_2d.nii.gz"))
    whole = gzip.compress(nib.Nifti1Image(nan, np.eye(4)).to_bytes())
    (inputs / "g_truncated.nii.gz").write_bytes(whole[: len(whole) // 2])
    return {"root": root, "config": str(config), "cfg": cfg, "weights": weights,
            "inputs": inputs}


def test_folder_end_to_end(setup, caplog):
    output = setup["root"] / "out"
    with caplog.at_level(logging.INFO, logger="vertspine.segment_vessels"):
        status = _tool().main(["--config-file", setup["config"], "--input", str(setup["inputs"]),
                               "--output", str(output), "--weights", setup["weights"],
                               "--spacing", "0.5", "0.6", "2.0", "--save-probabilities"])
    assert status == 1  # bad cases were skipped
    assert sorted(os.listdir(output)) == sorted(
        f"{stem}_vessel_{kind}.nii.gz" for stem in ("a_oblique", "b_qform", "c_array", "h_case")
        for kind in ("mask", "prob"))
    log = caplog.text
    assert "Model loaded in" in log and "[3/8] c_array.npy: 16x16x16 voxels" in log
    for name, reason in (("d_zero", "every voxel is 0.0"), ("e_nan", "1 NaN or infinite voxels"),
                         ("f_2d", "a 2D image of shape (16, 16)"),
                         ("g_truncated", "not a readable NIfTI file")):
        assert f"skipped: {setup['inputs'] / name}.nii.gz: {reason}" in log
    assert "4 of 8 cases skipped" in log and "[8/8] img.npy: 16x16x20 voxels" in log

    model = build_model(setup["cfg"])
    model.load_state_dict(torch.load(setup["weights"])["model"])
    model.eval()
    mapper = VolumeMapper(setup["cfg"], is_train=False)
    for stem, ending in (("a_oblique", ".nii.gz"), ("b_qform", ".nii"), ("c_array", ".npy"),
                         ("h_case", "/img.npy")):
        source = str(setup["inputs"] / f"{stem}{ending}")
        mask = nib.load(str(output / f"{stem}_vessel_mask.nii.gz"))
        probability = nib.load(str(output / f"{stem}_vessel_prob.nii.gz"))
        array, meta = read_volume(source, **({"spacing": (0.5, 0.6, 2.0)}
                                             if ending.endswith(".npy") else {}))
        for written in (mask, probability):
            assert written.shape == array.shape
            np.testing.assert_allclose(written.affine, meta.affine, atol=1e-6)
        assert mask.get_data_dtype() == np.uint8 and probability.get_data_dtype() == np.float32
        if ending.endswith(".npy"):
            np.testing.assert_allclose(mask.affine, np.diag([0.5, 0.6, 2.0, 1.0]))
            assert int(mask.header["sform_code"]) == int(mask.header["qform_code"]) == 1
        else:
            header = nib.load(source).header
            for key in ("sform_code", "qform_code", "xyzt_units", "descrip", "pixdim"):
                assert np.array_equal(mask.header[key], header[key]), key
            np.testing.assert_allclose(mask.header.get_qform(), header.get_qform(), atol=1e-6)
            np.testing.assert_allclose(mask.header.get_sform(), header.get_sform(), atol=1e-6)
        # the written arrays are the model's output on this case, in the input's voxel order
        record = {"file_name": source, "image_id": stem, "affine": meta.affine}
        with torch.no_grad():
            expected = model([mapper(record)])[0]
        saved_mask = np.asanyarray(mask.dataobj)
        assert np.array_equal(saved_mask, expected["vessel_mask"].numpy())
        np.testing.assert_allclose(np.asanyarray(probability.dataobj),
                                   expected["sem_seg"][1].numpy(), atol=1e-6)
        assert np.array_equal(saved_mask, np.asanyarray(probability.dataobj) >= 0.5)
        assert 0 < saved_mask.sum() < saved_mask.size


def test_reorientation_is_undone():
    affine = np.array([[0, 0, -2.0, 10], [-0.8, 0, 0, 5], [0, 1.5, 0, -3], [0, 0, 0, 1]])
    array = np.arange(4 * 5 * 6, dtype=np.int32).reshape(4, 5, 6)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    assert canonical.shape != array.shape
    restored = _tool().to_input_grid(np.asanyarray(canonical.dataobj), canonical.affine, affine)
    assert np.array_equal(restored, array)


def test_wrong_architecture_checkpoint_and_settings_are_errors(setup, tmp_path):
    cfg = setup["cfg"].clone()
    cfg.MODEL.SEGMENTOR.DYNUNET.FILTERS = [4, 8, 16]
    other = str(tmp_path / "other.pth")
    torch.save({"model": build_model(cfg).state_dict()}, other)
    base = ["--config-file", setup["config"], "--input", str(setup["inputs"] / "c_array.npy"),
            "--output", str(tmp_path / "out")]
    tool = _tool()
    with pytest.raises(CheckpointReadError, match="another architecture or config"):
        tool.main([*base, "--weights", other])
    with pytest.raises(ValueError, match="MODEL.VESSEL.INFERENCE.TARGET_SPACING instead"):
        tool.main([*base, "INPUT.VOLUME.TARGET_SPACING", "(1.0, 1.0, 1.0)"])
    with pytest.raises(ValueError, match="needs \"VesselSegmentor\""):
        tool.main([*base, "MODEL.META_ARCHITECTURE", "Segmentor"])
    assert not os.path.exists(tmp_path / "out")


def test_volumes_with_the_same_output_names_are_refused(tmp_path):
    for name in ("scan.nii", "scan.nii.gz"):
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(tmp_path / name))
    with pytest.raises(ValueError, match=r"several volumes are named \['scan'\]"):
        _tool().list_cases(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no .nii.gz, .nii, .npy file"):
        _tool().list_cases(str(tmp_path / "empty"))
