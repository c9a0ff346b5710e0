"""summarize(): the means' bootstrap intervals resample cases, a volume's slices together."""
import math

import numpy as np
import pytest

from vertspine.evaluation.prompt_seg_metrics import CaseScores
from vertspine.evaluation.prompt_seg_report import case_row, summarize


def _row(case: str, dsc: float, nsd: float, slice_index=None):
    scores = CaseScores(labels=np.array([1]), dsc=np.array([dsc]), nsd=np.array([nsd]))
    return case_row(case, "CT", scores, slice_index=slice_index)


def test_slices_of_one_volume_are_drawn_together():
    # volume a: 3 slices at DSC 1, volume b: 1 slice at 0. Mean over slices 75. Drawing volumes,
    # "b twice" (probability 1/4) gives 0, so the interval reaches 0; drawing the 4 slices
    # independently, 0 needs all four to be b's (1/256) and the 2.5 % point is 25.
    rows = [_row("a.npz", 1.0, 1.0, z) for z in range(3)] + [_row("b.npz", 0.0, 0.5, 0)]
    results = summarize(rows, num_resamples=4000, seed=1)
    assert results["DSC"] == pytest.approx(75.0) and results["NSD"] == pytest.approx(87.5)
    assert (results["DSC_ci_low"], results["DSC_ci_high"]) == (0.0, 100.0)
    assert (results["NSD_ci_low"], results["NSD_ci_high"]) == (50.0, 100.0)


def test_interval_of_independent_cases_matches_the_normal_approximation():
    rng = np.random.default_rng(0)
    dsc = rng.normal(0.8, 0.1, 400).clip(0, 1)
    results = summarize([_row(f"{i}.npz", d, d) for i, d in enumerate(dsc)])
    half_width = 1.96 * 100 * dsc.std(ddof=1) / math.sqrt(len(dsc))
    assert results["DSC"] == pytest.approx(100 * dsc.mean())
    assert results["DSC_ci_low"] == pytest.approx(100 * dsc.mean() - half_width, abs=0.1)
    assert results["DSC_ci_high"] == pytest.approx(100 * dsc.mean() + half_width, abs=0.1)
    assert summarize([_row(f"{i}.npz", d, d) for i, d in enumerate(dsc)]) == results  # seeded


def test_no_intervals_when_asked_or_when_nothing_is_scored():
    assert "DSC_ci_low" not in summarize([_row("a.npz", 1.0, 1.0)], num_resamples=0)
    empty = summarize([case_row("a.npz", "CT", None, note="missing")])
    assert math.isnan(empty["DSC"]) and math.isnan(empty["DSC_ci_low"])
