"""VesselInference and VesselSegmentor: sliding window vs whole-volume inference, test-time flips
and scales, resampling to a target spacing and back, the >= threshold, 26-connected component
removal against scikit-image, config checks."""
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from skimage.morphology import remove_small_objects

from conftest import REPO_ROOT
from vertspine.config import get_vertspine_cfg
from vertspine.modeling.vessel import VesselInference, remove_small_components

CONFIG = os.path.join(REPO_ROOT, "configs", "segmentation", "dynunet_sigmoid_3d_instant_test.yaml")


def _cfg(*overrides):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(CONFIG)
    cfg.merge_from_list(["MODEL.META_ARCHITECTURE", "VesselSegmentor", *overrides])
    return cfg


def _model(*overrides):
    torch.manual_seed(0)
    return build_model(_cfg(*overrides)).eval()


def _volume(*shape, seed=1):
    return torch.rand(1, *shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_one_window_equals_whole_volume_inference(mode):
    """A 16^3 volume is one 16^3 window: the blended output is the network's own, to 1e-5."""
    model = _model("MODEL.SEGMENTOR.SLIDING_WINDOW.MODE", mode)
    image = _volume(16, 16, 16)
    with torch.no_grad():
        output = model([{"image": image}])[0]
        expected = model.unet(image[None])[0, 0].sigmoid()
    assert output["sem_seg"].shape == (2, 16, 16, 16)
    torch.testing.assert_close(output["sem_seg"][1], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(output["sem_seg"][0], 1 - expected, atol=1e-5, rtol=0)
    assert output["vessel_mask"].dtype == torch.uint8
    assert torch.equal(output["vessel_mask"], (expected >= 0.5).to(torch.uint8))


def _symmetric_conv(symmetric: bool) -> torch.nn.Conv3d:
    """A 3x3x3 convolution whose kernel is mirror-symmetric along every axis (so the network is
    flip-equivariant, zero padding included) or not."""
    conv = torch.nn.Conv3d(1, 1, 3, padding=1)
    with torch.no_grad():
        distance = torch.tensor([1.0, 0.0, 1.0])
        kernel = 1.0 - 0.3 * (distance[:, None, None] + 2 * distance[None, :, None]
                              + 3 * distance[None, None, :])
        if not symmetric:
            kernel[0, 0, 0] += 1.0
        conv.weight.copy_(kernel[None, None])
        conv.bias.fill_(-2.0)
    return conv


def test_flips_on_a_flip_equivariant_network_equal_no_tta():
    image = _volume(12, 10, 14)
    flips = [[0], [1], [2], [0, 1, 2]]
    for symmetric, equal in ((True, True), (False, False)):
        conv = _symmetric_conv(symmetric)
        with torch.no_grad():
            plain = VesselInference()(conv, image)[0]
            tta = VesselInference(flips=flips)(conv, image)[0]
        assert torch.allclose(plain, tta, atol=1e-6) == equal


def test_flip_tta_is_the_mean_of_unflipped_view_logits():
    model = _model("MODEL.VESSEL.INFERENCE.TTA.FLIPS", "[[0], [1, 2]]")
    image = _volume(16, 20, 16)
    with torch.no_grad():
        output = model([{"image": image}])[0]["sem_seg"][1]
        views = [model._sliding_window(image.flip(axes)).flip(axes) for axes in
                 ([], [1], [2, 3])]  # tensor axes: channel first
    expected = torch.stack(views).mean(0)[0].sigmoid()
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=0)


def test_scales_and_target_spacing_resample_there_and_back():
    seen = []

    def window(view):
        seen.append(tuple(view.shape[1:]))
        return view.mean(0, keepdim=True)  # identity-like logits

    image = _volume(16, 12, 8)
    inference = VesselInference(scales=[0.5, 1.0, 1.5], target_spacing=[1.0, 1.0, 1.0])
    probability, mask = inference(window, image, spacing=(1.0, 1.0, 2.0))
    assert seen == [(8, 6, 8), (16, 12, 16), (24, 18, 24)]
    assert probability.shape == mask.shape == (16, 12, 8)
    # a constant volume stays constant through every resampling
    constant = torch.full((1, 16, 12, 8), 0.25)
    torch.testing.assert_close(inference(window, constant, (1.0, 1.0, 2.0))[0],
                               torch.full((16, 12, 8), 0.25).sigmoid())
    with pytest.raises(ValueError, match="TARGET_SPACING is set, but the volume has no"):
        inference(window, image)


def test_threshold_is_greater_or_equal():
    logits = torch.zeros(1, 4, 4, 4)  # sigmoid(0) = 0.5 exactly
    logits[0, 0] = -1e-3
    probability, mask = VesselInference(threshold=0.5)(lambda view: logits, logits)
    assert probability[1:].eq(0.5).all() and mask[1:].eq(1).all() and mask[0].eq(0).all()
    assert VesselInference(threshold=0.5 + 1e-6)(lambda view: logits, logits)[1].sum() == 0


@pytest.mark.parametrize("min_size", [0, 2, 3, 5, 20])
def test_component_removal_equals_skimage_connectivity_3(min_size):
    mask = np.random.default_rng(min_size).random((16, 16, 16)) < 0.08
    expected = remove_small_objects(mask, min_size=min_size, connectivity=3)
    assert np.array_equal(remove_small_components(mask, min_size), expected)


def test_component_removal_uses_26_connectivity():
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[1, 1, 1] = mask[2, 2, 2] = mask[3, 3, 3] = True  # one diagonal line of 3 voxels
    mask[0, 4, 0] = True  # alone
    kept = remove_small_components(mask, 3)
    assert kept.sum() == 3 and not kept[0, 4, 0]
    model = _model("MODEL.VESSEL.INFERENCE.MIN_COMPONENT_SIZE", "3")
    assert model.inference.min_component_size == 3


def test_training_is_the_segmentors():
    cfg = _cfg()
    torch.manual_seed(0)
    vessel = build_model(cfg).train()
    cfg.MODEL.META_ARCHITECTURE = "Segmentor"
    plain = build_model(cfg).train()
    plain.load_state_dict(vessel.state_dict())
    batch = [{"image": _volume(16, 16, 16, seed=s),
              "sem_seg": (_volume(16, 16, 16, seed=9 + s)[0] < 0.2).long()} for s in range(2)]
    ours, theirs = vessel(batch), plain(batch)
    assert set(ours) == {"loss_ce", "loss_dice"}
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name])


@pytest.mark.parametrize("overrides, message", [
    (["MODEL.SEGMENTOR.ACTIVATION", "softmax"], "ACTIVATION \"sigmoid\" and NUM_CLASSES 1"),
    (["MODEL.VESSEL.INFERENCE.THRESHOLD", "1.5"], r"THRESHOLD must be in \[0, 1\], got 1.5"),
    (["MODEL.VESSEL.INFERENCE.TTA.FLIPS", "[[0, 3]]"], r"FLIPS entry \[0, 3\] must list"),
    (["MODEL.VESSEL.INFERENCE.TTA.SCALES", "[0.0]"], "SCALES must be positive"),
    (["MODEL.VESSEL.INFERENCE.TARGET_SPACING", "[1.0, 1.0]"], "TARGET_SPACING must be 3"),
    (["MODEL.VESSEL.INFERENCE.MIN_COMPONENT_SIZE", "-1"], "MIN_COMPONENT_SIZE must be >= 0"),
])
def test_bad_settings_name_their_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_model(_cfg(*overrides))


def test_eval_only_path_evaluates_a_volume_dataset_with_the_same_inference(tmp_path):
    """train_net.py --eval-only's steps (build, load weights, Trainer.test) on a registered
    NIfTI volume dataset: the evaluator's Dice is the Dice of the model's vessel_mask."""
    from ct_volume import write_ct_volume
    from vertspine.data import register_volume_cases, unregister_dataset
    from vertspine.data.volume_mapper import VolumeMapper
    from vertspine.engine import Trainer, load_evaluation_weights

    image, label = write_ct_volume(str(tmp_path), "ct0")
    register_volume_cases("_vessel_ct_test", [(image, label)], class_names=["vessel"])
    try:
        cfg = _cfg("DATASETS.TEST", "('_vessel_ct_test',)", "OUTPUT_DIR", str(tmp_path / "out"),
                   "INPUT.VOLUME.ORIENTATION", "", "INPUT.VOLUME.INTENSITY.MODE", "percentiles",
                   "INPUT.VOLUME.INTENSITY.PERCENTILES", "(1.0, 99.0)",
                   "MODEL.VESSEL.INFERENCE.THRESHOLD", "0.45")
        torch.manual_seed(0)
        weights = str(tmp_path / "w.pth")
        torch.save({"model": build_model(cfg).state_dict()}, weights)
        cfg.MODEL.WEIGHTS = weights
        model = Trainer.build_model(cfg)
        load_evaluation_weights(model, cfg, resume=False)
        results = Trainer.test(cfg, model)
        record = DatasetCatalog.get("_vessel_ct_test")[0]
        data = VolumeMapper(cfg, is_train=False)(record)
        with torch.no_grad():
            output = model.eval()([data])[0]
    finally:
        unregister_dataset("_vessel_ct_test")
    probability = output["sem_seg"][1]
    mask, truth = probability.numpy() > 0.5, data["sem_seg"].numpy() == 1  # argmax of [1-p, p]
    dice = 200.0 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert 0 < dice < 100 and results["sem_seg"]["Dice"] == pytest.approx(dice, abs=1e-6)
    assert torch.equal(output["vessel_mask"], (probability >= 0.45).to(torch.uint8))


def test_bfloat16_autocast_gives_float32_close_to_float32_inference():
    image = _volume(16, 16, 32)
    with torch.no_grad():
        full = _model()([{"image": image}])[0]["sem_seg"][1]
        half = _model("MODEL.VESSEL.INFERENCE.AUTOCAST_BF16", "True")([{"image": image}])[0]
    half = half["sem_seg"][1]
    assert half.dtype == torch.float32
    difference = float((half - full).abs().max())
    assert 0 < difference < 0.02  # bfloat16 ran (not bit-equal) and stayed close
