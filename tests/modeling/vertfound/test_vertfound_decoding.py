"""Monotone Viterbi decoding against brute force, and the top-to-bottom order."""
import itertools

import pytest
import torch

from vertspine.modeling.vertfound.decoding import (
    monotone_viterbi,
    sequence_score,
    top_to_bottom,
)


def _brute_force(log_probs, gap_penalty, strict=True):
    num, k = log_probs.shape
    if strict:
        candidates = itertools.combinations(range(k), num)
    else:
        candidates = itertools.combinations_with_replacement(range(k), num)
    best = max(candidates, key=lambda seq: sequence_score(
        log_probs, torch.tensor(seq), gap_penalty))
    return torch.tensor(best), sequence_score(log_probs, torch.tensor(best), gap_penalty)


@pytest.mark.parametrize("num,k,gap_penalty,seed", [
    (1, 4, 0.0, 0), (3, 5, 0.0, 1), (4, 7, 0.5, 2), (5, 8, 2.0, 3), (6, 6, 1.0, 4),
    (2, 9, 3.0, 5), (5, 10, 0.3, 6),
])
def test_viterbi_equals_brute_force_with_gaps(num, k, gap_penalty, seed):
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(num, k, generator=g, dtype=torch.float64).log_softmax(-1) * 3
    levels, score = monotone_viterbi(log_probs, gap_penalty)
    expected, expected_score = _brute_force(log_probs, gap_penalty)
    assert score == pytest.approx(expected_score, abs=1e-9)
    assert levels.tolist() == expected.tolist()
    assert (levels[1:] > levels[:-1]).all()


def test_viterbi_takes_a_gap_when_the_evidence_wants_it():
    # Boxes clearly at levels 2, 3 and 6: no gap penalty -> keep the gap; a big penalty ->
    # the consecutive run wins.
    log_probs = torch.full((3, 8), -8.0)
    log_probs[0, 2] = log_probs[1, 3] = log_probs[2, 6] = 0.0
    log_probs[2, 4] = -3.0
    assert monotone_viterbi(log_probs, 0.0)[0].tolist() == [2, 3, 6]
    assert monotone_viterbi(log_probs, 5.0)[0].tolist() == [2, 3, 4]


def test_viterbi_repairs_an_out_of_order_argmax():
    log_probs = torch.log(torch.tensor([[0.7, 0.2, 0.05, 0.05],
                                        [0.6, 0.3, 0.05, 0.05],
                                        [0.1, 0.1, 0.7, 0.1]]))
    assert log_probs.argmax(-1).tolist() == [0, 0, 2]
    assert monotone_viterbi(log_probs, 0.0)[0].tolist() == [0, 1, 2]


def test_more_boxes_than_levels_falls_back_to_non_decreasing():
    g = torch.Generator().manual_seed(7)
    log_probs = torch.randn(5, 3, generator=g, dtype=torch.float64)
    levels, score = monotone_viterbi(log_probs, 0.7)
    expected, expected_score = _brute_force(log_probs, 0.7, strict=False)
    assert score == pytest.approx(expected_score, abs=1e-9)
    assert levels.tolist() == expected.tolist()


def test_empty_input():
    levels, score = monotone_viterbi(torch.zeros(0, 5))
    assert levels.shape == (0,) and score == 0.0


def test_top_to_bottom_sorts_by_centre_row():
    boxes = torch.tensor([[0, 50, 10, 70], [0, 0, 10, 20], [0, 20, 10, 40.]])
    assert top_to_bottom(boxes).tolist() == [1, 2, 0]
