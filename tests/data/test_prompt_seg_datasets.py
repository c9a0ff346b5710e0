"""Tests of vertspine.data.prompt_seg datasets: npz folders, modality subsets, the phantom sets."""
import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import vertspine  # noqa: F401  (makes detectron2 importable)
from test_image_label_datasets import names  # noqa: F401  (fixture: names unregistered after)
from vertspine.data.prompt_seg import (
    PromptSegPhantomConfig,
    UnknownModalityError,
    ensure_phantom_prompt_seg,
    prompt_boxes,
    read_prompt_seg_npz,
    register_phantom_prompt_seg,
    register_prompt_seg_folder,
    write_prompt_seg_npz,
)


def write_folder(folder):
    image = np.zeros((8, 10, 3), np.uint8)
    labels = np.zeros((8, 10), np.uint8)
    labels[2:4, 2:5] = 1
    write_prompt_seg_npz(os.path.join(folder, "XRay_a.npz"), image, gts=labels)
    write_prompt_seg_npz(os.path.join(folder, "sub", "X-Ray_b.npz"), image, gts=labels)
    write_prompt_seg_npz(os.path.join(folder, "Fundus_empty.npz"), image, gts=labels * 0)
    volume = np.zeros((4, 6, 6), np.int16)
    vol_labels = np.zeros((4, 6, 6), np.uint8)
    vol_labels[1, 1:3, 1:3], vol_labels[3, 2:4, 2:4] = 1, 2
    write_prompt_seg_npz(os.path.join(folder, "3DBox_CT_c.npz"), volume, gts=vol_labels,
                         spacing=(2.0, 0.5, 0.5))


def test_folder_dataset_records_and_modality_subsets(tmp_path, names, caplog):
    write_folder(str(tmp_path))
    registered = register_prompt_seg_folder("ps_folder", str(tmp_path))
    names += registered
    assert registered == ["ps_folder", "ps_folder_CT", "ps_folder_Fundus", "ps_folder_XRay"]
    with caplog.at_level(logging.WARNING):
        records = DatasetCatalog.get("ps_folder")
    assert "Fundus_empty" in caplog.text  # no label: skipped, reported
    assert [r["image_id"] for r in records] == ["3DBox_CT_c:z1", "3DBox_CT_c:z3", "XRay_a",
                                                os.path.join("sub", "X-Ray_b")]
    ct = records[0]
    assert ct["slice_index"] == 1 and ct["spacing"] == [2.0, 0.5, 0.5] and ct["depth"] == 4
    assert (ct["height"], ct["width"], ct["spatial_dims"]) == (6, 6, 3)
    assert [r["image_id"] for r in DatasetCatalog.get("ps_folder_XRay")] == \
        ["XRay_a", os.path.join("sub", "X-Ray_b")]
    assert DatasetCatalog.get("ps_folder_Fundus") == []
    assert MetadataCatalog.get("ps_folder_CT").modality == "CT"
    assert MetadataCatalog.get("ps_folder").evaluator_type == "prompt_seg"


def test_random_slice_mode_and_unknown_modalities(tmp_path, names):
    write_folder(str(tmp_path))
    names += register_prompt_seg_folder("ps_random", str(tmp_path), slices="random")
    ct = [r for r in DatasetCatalog.get("ps_random") if r["modality"] == "CT"]
    assert len(ct) == 1 and ct[0]["labelled_slices"] == [1, 3] and "slice_index" not in ct[0]
    write_prompt_seg_npz(str(tmp_path / "Scan_x.npz"), np.zeros((4, 4), np.uint8),
                         gts=np.ones((4, 4), np.uint8))
    with pytest.raises(UnknownModalityError, match="Scan_x.npz"):
        register_prompt_seg_folder("ps_unknown", str(tmp_path))
    names += register_prompt_seg_folder("ps_skip", str(tmp_path), unknown_modality="skip")
    assert all("Scan_x" not in r["image_id"] for r in DatasetCatalog.get("ps_skip"))


def test_phantom_generated_lazily_deterministic_and_reused(tmp_path, request):
    cfg = PromptSegPhantomConfig(num_2d=(2, 1, 1), num_3d=(1, 0, 1), image_size=64,
                                 depth_range=(16, 16), size_range=(64, 64))
    names = register_phantom_prompt_seg(str(tmp_path), cfg)
    request.addfinalizer(register_phantom_prompt_seg)  # the default datasets again, for later tests
    assert "phantom_promptseg_3d_test_CT" in names
    assert not os.path.exists(tmp_path / "phantom_promptseg_2d")  # nothing until loaded
    records = DatasetCatalog.get("phantom_promptseg_2d_train")
    assert len(records) == 2 and {r["modality"] for r in records} == {"XRay"}
    case = read_prompt_seg_npz(records[0]["file_name"], require_gts=True)
    assert case.imgs.shape == (64, 64, 3) and case.imgs.dtype == np.uint8
    labels = np.unique(case.gts)
    np.testing.assert_array_equal(labels, np.arange(len(labels)))  # 0, 1..n without gaps
    assert len(labels) - 1 >= 4  # at least 4 vertebrae
    volumes = DatasetCatalog.get("phantom_promptseg_3d_test")
    volume = read_prompt_seg_npz(volumes[0]["file_name"], require_gts=True)
    assert volume.imgs.shape == (16, 64, 64) and volume.imgs.dtype == np.int16
    assert volume.imgs.min() <= -900 and volume.gts.max() >= 2  # air and several structures
    assert volume.spacing[0] > 2 * volume.spacing[1]  # anisotropic, array order
    np.testing.assert_array_equal(volume.boxes, prompt_boxes(volume.gts)[1])  # inference input
    assert len(volume.boxes) == volume.gts.max()
    assert {r["slice_index"] for r in volumes} == \
        set(np.flatnonzero(volume.gts.reshape(16, -1).any(1)).tolist())
    # reused while the manifest matches; a second folder from the same config is identical
    folder = str(tmp_path / "phantom_promptseg_3d")
    stamp = os.path.getmtime(volumes[0]["file_name"])
    ensure_phantom_prompt_seg(folder, 3, cfg)
    assert os.path.getmtime(volumes[0]["file_name"]) == stamp
    again = ensure_phantom_prompt_seg(str(tmp_path / "copy"), 3, cfg)
    copy = read_prompt_seg_npz(os.path.join(again, "test", os.path.basename(volume.path)))
    np.testing.assert_array_equal(copy.imgs, volume.imgs)
    np.testing.assert_array_equal(copy.gts, volume.gts)
