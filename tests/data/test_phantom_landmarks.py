"""The landmark ceiling of the phantom's vertebra levels (vertspine.data.phantom.landmarks)."""
import pytest

from vertspine.data.phantom.landmarks import consistent_shifts, landmark_ceiling


def test_runs_with_a_landmark_have_one_position():
    assert consistent_shifts([1, 2, 3, 4]) == [0]  # skull and C1
    assert consistent_shifts([6, 7, 8, 9]) == [0]  # cervicothoracic junction
    assert consistent_shifts([17, 18, 19, 20, 21]) == [0]  # thoracolumbar junction
    assert consistent_shifts([21, 22, 23, 24]) == [0]  # sacrum below L5
    assert consistent_shifts([22, 23, 24, 25]) == [0]  # sacrum below a transitional L6


def test_free_runs_slide_within_their_region():
    assert consistent_shifts([10, 11, 12, 13]) == list(range(-2, 7))  # T3-T6: T1-T4 .. T9-T12
    assert consistent_shifts([3, 4, 5, 6]) == [0, 1]  # C3-C6 or C4-C7
    assert consistent_shifts([20, 21, 22, 23]) == [0]  # L1-L4: L2-L5 would show the sacrum


def test_ceiling_weights_images_by_their_vertebrae():
    ceiling, counts = landmark_ceiling([[1, 2, 3, 4], [10, 11, 12, 13]])
    assert counts == [1, 9]
    assert ceiling == pytest.approx(100 * (4 + 4 / 9) / 8)


def test_gaps_are_refused():
    with pytest.raises(ValueError, match="not consecutive"):
        consistent_shifts([3, 5])
