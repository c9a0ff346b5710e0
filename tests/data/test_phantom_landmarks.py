"""The landmark ceiling of the phantom's vertebra levels (vertspine.data.phantom.landmarks)."""
import json

import pytest

from conftest import load_script

from vertspine.data.phantom.landmarks import consistent_shifts, landmark_ceiling


def test_runs_with_a_landmark_have_one_position():
    assert consistent_shifts([1, 2, 3, 4]) == [0]  # skull and C1
    assert consistent_shifts([6, 7, 8, 9]) == [0]  # cervicothoracic junction
    assert consistent_shifts([17, 18, 19, 20, 21]) == [0]  # thoracolumbar junction
    assert consistent_shifts([21, 22, 23, 24]) == [0]  # sacrum below L5
    assert consistent_shifts([20, 21, 22, 23, 24, 25]) == [0]  # six lumbar vertebrae in view


def test_a_transitional_l6_above_the_sacrum_reads_as_l5():
    # L3-L6 above the sacrum looks like L2-L5 above it: the reader does not know the patient
    # has six lumbar vertebrae, so the landmarks point one level too high and credit nothing
    assert consistent_shifts([22, 23, 24, 25]) == [-1]
    ceiling, counts = landmark_ceiling([[22, 23, 24, 25], [21, 22, 23, 24]])
    assert counts == [1, 1] and ceiling == pytest.approx(50.0)


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


def test_script_splits_predictions_by_landmarks(tmp_path, capsys):
    module = load_script("scripts/phantom_level_ceiling.py", "phantom_level_ceiling")
    per_image = [
        {"image_id": 1, "gt": ["C1", "C2", "C3", "C4"], "pred": ["C1", "C2", "C3", "C5"]},
        {"image_id": 2, "gt": ["T3", "T4", "T5", "T6"], "pred": ["T3", "T4", "T5", "T6"]},
        {"image_id": 3, "gt": ["L3", "L4", "L5", "L6"], "pred": ["L2", "L3", "L4", "L5"]},
    ]
    path = tmp_path / "vertebra_level_per_image.json"
    path.write_text(json.dumps(per_image))
    module.print_split_results(str(path))
    out = capsys.readouterr().out
    assert "pinned (1 position): 1 images, 4 vertebrae, IDR 75.0%, IRA 0.0%" in out
    assert "ambiguous (2+ positions): 1 images, 4 vertebrae, IDR 100.0%, IRA 100.0%" in out
    assert "misleading (transitional L6): 1 images, 4 vertebrae, IDR 0.0%, IRA 0.0%" in out
