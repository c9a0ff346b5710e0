"""tools/predict_prompt_seg.py and tools/export_prompt_seg.py end to end on small phantom-like
npz folders with a tiny randomly initialised model saved by the test: 2D and 3D outputs, each
bad input reported, routing by modality with a general fallback, and the exported ONNX Runtime
and OpenVINO graphs against PyTorch."""
import csv
import os

import numpy as np
import pytest
import torch

from conftest import load_script
from vertspine.data.prompt_seg import read_prompt_seg_npz, read_segs, write_prompt_seg_npz
from vertspine.modeling.prompt_seg import BoxPromptPredictor

from modeling.prompt_seg.efficientvit_fixtures import single_torch_thread
from modeling.prompt_seg.prompt_seg_test_utils import INSTANT, TINY_SAM_VIT, tiny_model

# Exported float32 graphs reorder sums: on this tiny model the largest differences seen are
# ~1e-5 (embeddings) and ~1e-4 (logits of magnitude ~10); the masks (logits > 0) may differ
# only where a logit is within that of 0.
ATOL_EMBEDDING, ATOL_LOGITS = 1e-4, 1e-3


def _tool(name):
    return load_script(f"tools/{name}.py", name)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with single_torch_thread():
        yield


def _save_model(path, seed):
    model = tiny_model(*TINY_SAM_VIT, seed=seed).eval()
    torch.save({"model": model.state_dict()}, str(path))
    return model


def _write_good_cases(folder):
    """A 2D X-ray (40 x 56 RGB, two bright rectangles) and a 3D CT (9 x 32 x 40, two blocks)."""
    rng = np.random.RandomState(0)
    image = rng.randint(0, 60, (40, 56, 3)).astype(np.uint8)
    image[5:20, 4:25] += 150
    image[22:36, 30:50] += 120
    write_prompt_seg_npz(os.path.join(folder, "2DBox_X-Ray_0001.npz"), image,
                         boxes=np.array([[4, 5, 24, 19], [30, 22, 49, 35]]))
    volume = rng.randint(0, 50, (9, 32, 40)).astype(np.uint8)
    volume[1:5, 4:14, 5:18] += 150
    volume[2:6, 16:28, 20:36] += 100
    write_prompt_seg_npz(os.path.join(folder, "3DBox_CT_0002.npz"), volume,
                         boxes=np.array([[5, 4, 1, 17, 13, 4], [20, 16, 2, 35, 27, 5]]),
                         spacing=(3.0, 1.0, 1.0))
    return image, volume


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("predict_prompt_seg")
    cases = root / "cases"
    cases.mkdir()
    image, volume = _write_good_cases(str(cases))
    general = _save_model(root / "general.pth", seed=0)
    return {"root": root, "cases": str(cases), "image": image, "volume": volume,
            "general": general}


def _args(weights, input_dir, output_dir, *extra):
    return ["--config-file", INSTANT, "--weights", str(weights), "--input", str(input_dir),
            "--output", str(output_dir), *extra, *TINY_SAM_VIT]


def _rows(output_dir):
    with open(os.path.join(output_dir, "predictions.csv"), newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def test_2d_and_3d_outputs_and_every_bad_input_reported(workspace, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, volume = _write_good_cases(str(inputs))
    np.savez(inputs / "2DBox_US_no_imgs.npz", boxes=np.array([[1, 1, 5, 5]]))
    np.savez(inputs / "2DBox_US_outside.npz", imgs=image, boxes=np.array([[1, 1, 80, 5]]))
    np.savez(inputs / "2DBox_US_zero.npz", imgs=image, boxes=np.zeros((0, 4)))
    np.savez(inputs / "3DBox_CT_zmin.npz", imgs=volume, spacing=np.ones(3),
             boxes=np.array([[1, 1, 5, 9, 9, 2]]))
    np.savez(inputs / "3DBox_MR_nospacing.npz", imgs=volume, boxes=np.array([[1, 1, 1, 9, 9, 2]]))
    np.savez(inputs / "Photo_unknown.npz", imgs=image, boxes=np.array([[4, 5, 24, 19]]))
    out = tmp_path / "out"
    code = _tool("predict_prompt_seg").main(_args(workspace["root"] / "general.pth", inputs, out))
    assert code == 1  # errors among the inputs
    rows = _rows(out)
    statuses = {name: (row["status"], row["message"]) for name, row in rows.items()}
    assert statuses["2DBox_X-Ray_0001.npz"][0] == statuses["3DBox_CT_0002.npz"][0] == "ok"
    expected = {"2DBox_US_no_imgs.npz": ("error", "no 'imgs' array"),
                "2DBox_US_outside.npz": ("error", "reaches outside the image"),
                "2DBox_US_zero.npz": ("skipped", "zero boxes"),
                "3DBox_CT_zmin.npz": ("error", "z_min > z_max"),
                "3DBox_MR_nospacing.npz": ("error", "without 'spacing'"),
                "Photo_unknown.npz": ("skipped", "unknown modality")}
    for name, (status, message) in expected.items():
        assert statuses[name][0] == status and message in statuses[name][1], name
        assert not (out / name).exists()
    assert rows["2DBox_X-Ray_0001.npz"]["modality"] == "XRay"
    assert rows["2DBox_X-Ray_0001.npz"]["route"] == "general"
    assert rows["3DBox_CT_0002.npz"]["encoder_calls"] == rows["3DBox_CT_0002.npz"][
        "distinct_slices"] == "5"  # slices 1..5
    assert float(rows["2DBox_X-Ray_0001.npz"]["load_seconds"]) > 0
    assert float(rows["3DBox_CT_0002.npz"]["load_seconds"]) == 0  # loaded once
    printed = capsys.readouterr().out
    assert "encoder calls 5, distinct slices inside the boxes 5 (equal)" in printed
    assert "2 of 8 cases segmented, 2 skipped, 4 errors" in printed

    predictor = BoxPromptPredictor.from_model(workspace["general"], "torch")
    for name, shape in (("2DBox_X-Ray_0001.npz", (40, 56)), ("3DBox_CT_0002.npz", (9, 32, 40))):
        segs = read_segs(str(out / name), shape)
        assert segs.dtype == np.uint16
        expected = predictor.predict(read_prompt_seg_npz(str(inputs / name))).segs
        np.testing.assert_array_equal(segs, expected)


def test_cases_are_routed_by_modality_with_a_general_fallback(workspace, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    ct_model = _save_model(models / "CT.pth", seed=1)
    _save_model(models / "general.pth", seed=0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    image, _ = _write_good_cases(str(inputs))
    np.savez(inputs / "Photo_unknown.npz", imgs=image, boxes=np.array([[4, 5, 24, 19]]))
    out = tmp_path / "out"
    code = _tool("predict_prompt_seg").main(
        _args(models, inputs, out, "--unknown-modality", "general"))
    assert code == 0
    rows = _rows(out)
    assert {name: (row["modality"], row["route"]) for name, row in rows.items()} == {
        "2DBox_X-Ray_0001.npz": ("XRay", "general"), "3DBox_CT_0002.npz": ("CT", "CT"),
        "Photo_unknown.npz": ("unknown", "general")}
    ct_case = read_prompt_seg_npz(str(inputs / "3DBox_CT_0002.npz"))
    expected = BoxPromptPredictor.from_model(ct_model, "torch").predict(ct_case).segs
    np.testing.assert_array_equal(read_segs(str(out / "3DBox_CT_0002.npz")), expected)


@pytest.fixture(scope="module")
def exported(workspace):
    folder = workspace["root"] / "exported"
    code = _tool("export_prompt_seg").main(
        ["--config-file", INSTANT, "--weights", str(workspace["root"] / "general.pth"),
         "--output", str(folder), *TINY_SAM_VIT])
    assert code == 0
    return str(folder)


@pytest.mark.parametrize("kind", ["onnxruntime", "openvino"])
def test_exported_engines_match_pytorch(workspace, exported, kind):
    for ending in ("onnx", "xml", "bin"):
        assert os.path.isfile(os.path.join(exported, f"box_decoder.{ending}"))
    reference = BoxPromptPredictor.from_model(workspace["general"], "torch")
    engine = BoxPromptPredictor.from_export(exported, kind)
    images = [workspace["image"], *workspace["volume"][1:4]]
    expected, embeddings = reference.encode(images), engine.encode(images)  # batch of 4
    assert embeddings.shape == expected.shape == (4, 256, 8, 8)
    assert torch.allclose(embeddings, expected, atol=ATOL_EMBEDDING)
    for count in (1, 3, 5):  # the number of boxes is dynamic
        boxes = torch.tensor([[2.0, 3.0, 20.5, 17.25]] * count) + torch.arange(count)[:, None]
        logits, iou = engine.decoder(expected[:1], boxes)
        ref_logits, ref_iou = reference.decoder(expected[:1], boxes)
        assert logits.shape == (count, 32, 32)
        assert torch.allclose(logits, ref_logits, atol=ATOL_LOGITS)
        assert torch.allclose(iou, ref_iou, atol=ATOL_LOGITS)
    for path in sorted(os.listdir(workspace["cases"])):
        case = read_prompt_seg_npz(os.path.join(workspace["cases"], path))
        agree = np.mean(engine.predict(case).segs == reference.predict(case).segs)
        assert agree >= 0.999, (path, agree)


def test_the_predict_tool_runs_the_export_folder(workspace, exported, tmp_path):
    out = tmp_path / "out"
    tool = _tool("predict_prompt_seg")
    assert tool.main(_args(exported, workspace["cases"], out, "--engine", "openvino")) == 0
    rows = _rows(out)
    assert [row["status"] for row in rows.values()] == ["ok", "ok"]
    assert rows["3DBox_CT_0002.npz"]["encoder_calls"] == "5"
    reference = BoxPromptPredictor.from_model(workspace["general"], "torch")
    for name in rows:
        case = read_prompt_seg_npz(os.path.join(workspace["cases"], name))
        agree = np.mean(read_segs(str(out / name)) == reference.predict(case).segs)
        assert agree >= 0.999
    with pytest.raises(ValueError, match="export folder.*--engine onnxruntime or openvino"):
        tool.main(_args(exported, workspace["cases"], tmp_path / "torch"))


def test_mask_prompt_graphs_match_pytorch_and_the_tool_propagates_with_them(workspace, tmp_path):
    """A model with mask prompts: its exported decoder takes masks and per-box flags (boxes
    with and without a prompt in one call) and agrees with PyTorch in both engines; the predict
    tool's 3D propagation with PROPAGATION.MASK_PROMPT gives PyTorch's labels."""
    masked = ["MODEL.PROMPT_SEG.MASK_PROMPT", "True"]
    model = tiny_model(*TINY_SAM_VIT, *masked, seed=3).eval()
    torch.save({"model": model.state_dict()}, str(tmp_path / "masked.pth"))
    folder = tmp_path / "exported"
    assert _tool("export_prompt_seg").main(
        ["--config-file", INSTANT, "--weights", str(tmp_path / "masked.pth"),
         "--output", str(folder), *TINY_SAM_VIT, *masked]) == 0
    reference = BoxPromptPredictor.from_model(model, "torch", mask_prompt=True)
    embedding = reference.encode([workspace["image"]])
    boxes = torch.tensor([[2.0, 3.0, 20.5, 17.25], [4.0, 1.0, 30.0, 25.0], [8.0, 8.0, 16.0, 24.0]])
    masks = (torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    flags = torch.tensor([1.0, 0.0, 1.0])
    ref_logits, ref_iou = reference.decoder(embedding, boxes, masks, flags)
    plain_logits, _ = reference.decoder(embedding, boxes, masks, torch.zeros(3))
    assert not torch.allclose(ref_logits[0], plain_logits[0], atol=1e-2)  # the prompt counts
    torch.testing.assert_close(ref_logits[1], plain_logits[1])  # an unflagged row ignores it
    for kind in ("onnxruntime", "openvino"):
        engine = BoxPromptPredictor.from_export(str(folder), kind, mask_prompt=True)
        logits, iou = engine.decoder(embedding, boxes, masks, flags)
        assert torch.allclose(logits, ref_logits, atol=ATOL_LOGITS)
        assert torch.allclose(iou, ref_iou, atol=ATOL_LOGITS)
    out = tmp_path / "out"
    assert _tool("predict_prompt_seg").main(
        _args(folder, workspace["cases"], out, "--engine", "openvino", *masked,
              "MODEL.PROMPT_SEG.PROPAGATION.MASK_PROMPT", "True")) == 0
    case = read_prompt_seg_npz(os.path.join(workspace["cases"], "3DBox_CT_0002.npz"))
    agree = np.mean(read_segs(str(out / "3DBox_CT_0002.npz")) == reference.predict(case).segs)
    assert agree >= 0.999
    with pytest.raises(ValueError, match="decoder that takes them"):
        BoxPromptPredictor.from_model(workspace["general"], "torch", mask_prompt=True)
