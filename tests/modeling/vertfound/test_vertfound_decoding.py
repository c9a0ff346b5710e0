"""Monotone Viterbi decoding against brute force, and the top-to-bottom order."""
import itertools

import pytest
import torch

from vertspine.modeling.vertfound.decoding import (
    decode_levels,
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


def test_scores_are_the_sigmoid_probabilities_the_focal_loss_trains():
    logits = torch.tensor([[3.0, 2.9], [0.5, -5.0]])
    levels, scores, probs = decode_levels(logits, viterbi=False, gap_penalty=0.0)
    assert levels.tolist() == [0, 0]
    # sigmoid(3) = 0.9526 ranks box 0 above box 1 (sigmoid(0.5) = 0.6225); a softmax would give
    # 0.525 and 0.996, the reverse order, and the matching takes boxes in score order
    assert scores.tolist() == pytest.approx([0.952574, 0.622459], abs=1e-6)
    torch.testing.assert_close(probs, logits.sigmoid())


def test_viterbi_decodes_log_sigmoid_scores_not_log_softmax():
    # box 1 is confidently both level 0 and 1 (sigmoid 0.982 and 0.9997), box 2 weakly level 1
    # (0.269) over 2 (0.119): taking level 0 for box 1 costs log-sigmoid 0.018, taking level 2
    # for box 2 costs 0.81, so [0, 1]. Log-softmax differs from the logits by a constant per box,
    # and the logits' sums (4 - 1 = 3 < 8 - 2 = 6) give [1, 2].
    logits = torch.tensor([[4.0, 8.0, -9.0], [-9.0, -1.0, -2.0]])
    levels, scores, _ = decode_levels(logits, viterbi=True, gap_penalty=0.0)
    assert levels.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([0.982014, 0.268941], abs=1e-6)
    assert monotone_viterbi(logits.log_softmax(-1), 0.0)[0].tolist() == [1, 2]


def test_decoding_no_boxes():
    levels, scores, probs = decode_levels(torch.zeros(0, 5), viterbi=True, gap_penalty=2.0)
    assert levels.shape == scores.shape == (0,) and probs.shape == (0, 5)


def test_top_to_bottom_sorts_by_centre_row():
    boxes = torch.tensor([[0, 50, 10, 70], [0, 0, 10, 20], [0, 20, 10, 40.]])
    assert top_to_bottom(boxes).tolist() == [1, 2, 0]
