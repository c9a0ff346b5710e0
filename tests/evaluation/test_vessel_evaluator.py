"""The vessel evaluator: built from evaluator_type "vessel" with the inference's threshold key,
binarises with p >= threshold (or takes the model's vessel_mask), means over the cases where a
metric is defined with their counts, a per-case CSV with "skipped" cells, clear errors; end to
end on a NIfTI volume dataset through VolumeMapper's test loader and detectron2's inference loop
(the spacing reaches HD95 after reorientation)."""
import csv

import numpy as np
import pytest
import torch
from detectron2.config import CfgNode as CN
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset

from ct_volume import SPACING as CT_SPACING, write_ct_volume
from vertspine.config import get_vertspine_cfg
from vertspine.data import register_volume_cases, unregister_dataset
from vertspine.engine import Trainer
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.vessel import PER_CASE_CSV, VesselEvaluator, vessel_threshold
from vertspine.evaluation.vessel_metrics import METRIC_NAMES, vessel_metrics

N = 12
X, Y, Z = np.indices((N, N, N))
TUBE = (X - 6) ** 2 + (Y - 6) ** 2 <= 2.0 ** 2
SPACING = (0.5, 0.5, 2.0)


def _case(name, gt, prob):
    """(input, output) of one volume as the mapper and the segmentor give them."""
    prob = torch.as_tensor(prob, dtype=torch.float32)
    return ({"file_name": name, "sem_seg": torch.as_tensor(gt, dtype=torch.int64),
             "spacing": SPACING}, {"sem_seg": torch.stack([1 - prob, prob])})


@pytest.fixture
def dataset_name(tmp_path):
    name = f"vessel_eval_{tmp_path.name}"
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(evaluator_type="vessel")
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_threshold_comes_from_the_inference_key_else_half():
    inference = CN({"MODEL": CN({"VESSEL": CN({"INFERENCE": CN({"THRESHOLD": 0.62})})})})
    assert vessel_threshold(inference) == (0.62, "MODEL.VESSEL.INFERENCE.THRESHOLD")
    assert vessel_threshold(CN({"MODEL": CN()}))[0] == 0.5


def test_registered_evaluator_binarises_at_or_above_the_threshold(dataset_name, tmp_path):
    cfg = get_vertspine_cfg()
    cfg.TEST.VESSEL.NSD_TOLERANCE_MM = 0.75
    evaluator = build_evaluator(cfg, dataset_name, str(tmp_path))
    assert isinstance(evaluator, VesselEvaluator)
    assert (evaluator.threshold, evaluator.nsd_tolerance_mm) == (vessel_threshold(cfg)[0], 0.75)
    evaluator.threshold = 0.5
    prob = np.where(TUBE, 0.5, 0.49)  # exactly at the threshold: vessel
    record, output = _case("a", TUBE, prob)
    evaluator.process([record], [output])
    results = evaluator.evaluate()["vessel"]
    assert results["Dice"] == 100.0 and results["clDice"] == 100.0 and results["HD95"] == 0.0
    assert results["AUROC"] == 100.0 and results["n-AUROC"] == 1.0


def test_means_skip_undefined_cases_and_the_csv_lists_every_case(tmp_path):
    shifted = np.roll(TUBE, 1, axis=0)
    cases = [_case("b_shifted", TUBE, shifted * 0.9 + 0.05),
             _case("a_empty", np.zeros_like(TUBE), np.full(TUBE.shape, 0.1)),
             _case("c_missed", TUBE, np.full(TUBE.shape, 0.2))]
    evaluator = VesselEvaluator("vessels", nsd_tolerance_mm=1.0, distributed=False,
                                output_dir=str(tmp_path))
    evaluator.process(*map(list, zip(*cases)))
    results = evaluator.evaluate()["vessel"]
    shifted_scores = vessel_metrics(shifted, TUBE, SPACING, prob=shifted * 0.9 + 0.05)
    # Dice over all three cases (1 when both are empty, 0 for the missed tube)
    assert results["Dice"] == pytest.approx((shifted_scores["Dice"] + 1 + 0) / 3 * 100)
    # HD95: undefined for the missed tube, 0 mm for empty-vs-empty; shift 0.5 mm along axis 0
    assert results["n-HD95"] == 2 and results["HD95"] == pytest.approx((0.5 + 0.0) / 2)
    # AUROC only where the ground truth has both classes; the missed tube's flat map gives 0.5
    assert results["n-AUROC"] == 2
    assert results["AUROC"] == pytest.approx((shifted_scores["AUROC"] + 0.5) / 2 * 100)
    assert results["n-precision"] == 2 and results["betti0_error"] == pytest.approx(1 / 3)
    with open(tmp_path / PER_CASE_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["file_name"] for r in rows] == ["a_empty", "b_shifted", "c_missed"]
    assert list(rows[0]) == ["file_name", *METRIC_NAMES]
    assert rows[0]["AUROC"] == "skipped" and rows[2]["HD95"] == "skipped"
    assert rows[2]["precision"] == "skipped" and float(rows[2]["recall"]) == 0.0
    assert float(rows[1]["Dice"]) == pytest.approx(shifted_scores["Dice"], rel=1e-5)
    assert int(rows[2]["betti0_gt"]) == 1 and int(rows[2]["betti0_pred"]) == 0


def test_a_ready_vessel_mask_wins_over_the_threshold():
    record, output = _case("a", TUBE, np.full(TUBE.shape, 0.9))
    output["vessel_mask"] = torch.as_tensor(TUBE, dtype=torch.uint8)
    evaluator = VesselEvaluator("vessels", distributed=False)
    evaluator.process([record], [output])
    results = evaluator.evaluate()["vessel"]
    assert results["Dice"] == 100.0 and results["AUROC"] == 50.0  # AUROC from the flat map


def test_probability_metrics_off_reports_them_as_skipped():
    record, output = _case("a", TUBE, TUBE * 0.8)
    evaluator = VesselEvaluator("vessels", probability_metrics=False, distributed=False)
    evaluator.process([record], [output])
    results = evaluator.evaluate()["vessel"]
    assert results["n-AUROC"] == 0 and "AUROC" not in results and results["Dice"] == 100.0


@pytest.mark.parametrize("edit, error, message", [
    (lambda r, o: r.pop("spacing"), KeyError, "'a' has no 'spacing'"),
    (lambda r, o: r.update(sem_seg=r["sem_seg"] * 2), ValueError, r"'a': ground-truth labels \[0, 2\]"),
    (lambda r, o: o.update(sem_seg=o["sem_seg"] * 5 - 2), ValueError, "logits"),
    (lambda r, o: o.update(sem_seg=o["sem_seg"][:, :-1]), ValueError, "'a': .*one shape"),
    (lambda r, o: o.update(sem_seg=o["sem_seg"][:1]), ValueError, r"\[2, X, Y, Z\]"),
], ids=["no-spacing", "labels", "logits", "shape", "channels"])
def test_bad_inputs_are_named(edit, error, message):
    record, output = _case("a", TUBE, TUBE * 0.8)
    edit(record, output)
    with pytest.raises(error, match=message):
        VesselEvaluator("vessels", distributed=False).process([record], [output])


def test_end_to_end_on_a_nifti_volume_dataset(tmp_path):
    """An oracle shifted by one voxel along the third axis (2.5 mm, RAS order) scores HD95 2.5
    mm and Dice 3/4 on the 8 x 8 x 4 block of ct_volume, read through the test loader."""
    register_volume_cases("_vessel_e2e", [write_ct_volume(str(tmp_path), "ct0")],
                          class_names=["vessel"], evaluator_type="vessel")
    try:
        cfg = get_vertspine_cfg()
        cfg.INPUT.DATASET_MAPPER, cfg.DATALOADER.NUM_WORKERS = "VolumeMapper", 0
        cfg.INPUT.VOLUME.ORIENTATION = "RAS"
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1  # the loader checks the (default) model's count

        def oracle(batched_inputs):
            probs = [torch.roll(x["sem_seg"], 1, dims=2).float() for x in batched_inputs]
            return [{"sem_seg": torch.stack([1 - p, p])} for p in probs]

        evaluator = build_evaluator(cfg, "_vessel_e2e", str(tmp_path / "eval"))
        results = inference_on_dataset(oracle, Trainer.build_test_loader(cfg, "_vessel_e2e"),
                                       evaluator)["vessel"]
    finally:
        unregister_dataset("_vessel_e2e")
    assert results["HD95"] == pytest.approx(CT_SPACING[2]) and results["Dice"] == 75.0
    # binary scores: one ROC point (FPR 64 / negatives, TPR 3/4), AUROC = (1 + TPR - FPR) / 2
    false_positive_rate = 64 / (40 * 36 * 24 - 256)
    assert results["AUROC"] == pytest.approx(50 * (1 + 0.75 - false_positive_rate))
    assert results["betti0_error"] == 0 and results["n-HD95"] == 1
    assert (tmp_path / "eval" / PER_CASE_CSV).is_file()
