"""launch: a process count that would run nothing is an error, not a silent exit 0."""
import pytest

from vertspine.engine import launch


def _must_not_run():
    raise AssertionError("main_func ran")


@pytest.mark.parametrize("num_gpus, num_machines", [(0, 1), (-1, 1), (1, 0)])
def test_no_process_is_an_error(num_gpus, num_machines):
    with pytest.raises(ValueError, match=rf"--num-gpus {num_gpus} --num-machines {num_machines}"
                                         ".*at least 1"):
        launch(_must_not_run, num_gpus, num_machines=num_machines)
