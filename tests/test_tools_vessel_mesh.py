"""tools/export_vessel_mesh.py: a NIfTI mask's mesh lands in the file's world frame, a .npy
mask's in mm along its axes; the HTML viewer is self-contained; the projections are those of
image, ground truth and mask; missing, empty or mismatched inputs stop with a named error."""
import os
import re
import sys

import cv2
import numpy as np
import pytest
from stl.mesh import Mesh

from conftest import REPO_ROOT
from vertspine.evaluation.vessel_mesh import mask_mesh, mip_grid
from vertspine.utils.file_io import write_nifti

sys.path.insert(0, os.path.join(REPO_ROOT, "tools"))
import export_vessel_mesh  # noqa: E402

X, Y, Z = np.indices((12, 10, 8))
TUBE = ((X - 6) ** 2 + (Y - 5) ** 2 <= 4).astype(np.uint8)  # touches two faces
AFFINE = np.array([[0.0, -0.9, 0.0, 20.0], [0.7, 0.0, 0.0, -5.0], [0.0, 0.0, 2.0, 30.0],
                   [0.0, 0.0, 0.0, 1.0]])  # axes permuted, one flipped, anisotropic


def _vectors(path):
    return Mesh.from_file(str(path)).vectors


def test_nifti_mask_mesh_in_world_mm_with_viewer_and_projections(tmp_path):
    gt = np.roll(TUBE, 1, axis=0)
    image = TUBE * 100.0 + 20.0
    for name, volume in (("case_pred", TUBE), ("case_gt", gt), ("case_img", image)):
        write_nifti(str(tmp_path / f"{name}.nii.gz"), volume, AFFINE)
    paths = export_vessel_mesh.main([
        "--mask", str(tmp_path / "case_pred.nii.gz"), "--gt", str(tmp_path / "case_gt.nii.gz"),
        "--image", str(tmp_path / "case_img.nii.gz"), "--output", str(tmp_path / "out")])
    assert paths["stl"] == str(tmp_path / "out" / "case_pred.stl")
    vertices, faces = mask_mesh(TUBE, AFFINE)
    np.testing.assert_allclose(_vectors(paths["stl"]), vertices[faces], atol=1e-4)
    html = open(paths["html"], encoding="utf-8").read()
    assert '"name":"mask"' in html and '"name":"ground truth"' in html
    assert "world RAS+ mm" in html
    assert not re.search(r"<script[^>]*\bsrc=", html)  # no script fetched: works offline...
    assert "plotly.js v" in html and len(html) > 1_000_000  # ...plotly.js is inside
    mip = cv2.imread(paths["mip"], cv2.IMREAD_UNCHANGED)
    spacing = (0.7, 0.9, 2.0)
    np.testing.assert_array_equal(mip, mip_grid([(image, False), (gt, True), (TUBE, True)],
                                                spacing))
    assert mip.shape[0] == 3 * mip_grid([(TUBE, True)], spacing).shape[0] + 2 * 2


def test_npy_mask_mesh_in_mm_along_the_array_axes(tmp_path):
    np.save(tmp_path / "tube.npy", TUBE.astype(np.float32) * 0.8)  # probabilities: >= 0.5
    paths = export_vessel_mesh.main(["--mask", str(tmp_path / "tube.npy"), "--output",
                                     str(tmp_path), "--name", "mesh", "--spacing", "0.5", "1",
                                     "3"])
    vertices, faces = mask_mesh(TUBE, np.diag([0.5, 1.0, 3.0, 1.0]))
    np.testing.assert_allclose(_vectors(paths["stl"]), vertices[faces], atol=1e-5)
    # level 0.5 halfway between voxels: x = 3.5, y = 2.5 and, past the border, z = -0.5
    assert vertices.min(axis=0) == pytest.approx([3.5 * 0.5, 2.5 * 1.0, -0.5 * 3.0])
    assert "array-axis mm" in open(paths["html"], encoding="utf-8").read()
    assert cv2.imread(paths["mip"], cv2.IMREAD_UNCHANGED).shape == \
        mip_grid([(TUBE, True)], (0.5, 1.0, 3.0)).shape


def test_bad_inputs_stop_with_a_named_error(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((6, 6, 6), np.uint8))
    np.save(tmp_path / "tube.npy", TUBE)
    np.save(tmp_path / "small.npy", TUBE[:6])
    write_nifti(str(tmp_path / "tube.nii.gz"), TUBE, AFFINE)
    cases = [
        (["--mask", str(tmp_path / "missing.nii.gz")], "missing.nii.gz"),
        (["--mask", str(tmp_path / "empty.npy")], "empty.npy has no voxel >= 0.5"),
        (["--mask", str(tmp_path / "tube.npy"), "--gt", str(tmp_path / "small.npy")],
         r"small.npy: shape \(6, 10, 8\)"),
        (["--mask", str(tmp_path / "tube.nii.gz"), "--spacing", "1", "1", "1"],
         "--spacing is for .npy inputs"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit, match=message):
            export_vessel_mesh.main([*argv, "--output", str(tmp_path / "out")])
    assert not os.path.exists(tmp_path / "out")  # nothing written
