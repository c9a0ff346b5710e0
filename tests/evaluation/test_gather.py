"""gather_on_main: rows of every rank concatenated in rank order on rank 0, None elsewhere."""
from detectron2.utils import comm

from vertspine.evaluation.gather import gather_on_main


def test_rows_of_all_ranks_on_the_main_process_only(monkeypatch):
    per_rank = [[{"image_id": 1}, {"image_id": 3}], [{"image_id": 2}]]
    monkeypatch.setattr(comm, "synchronize", lambda: None)  # the exchange gloo would do
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: per_rank if comm.get_rank() == 0 else [])
    assert gather_on_main(per_rank[0], True) == [{"image_id": 1}, {"image_id": 3}, {"image_id": 2}]
    monkeypatch.setattr(comm, "get_rank", lambda: 1)
    assert gather_on_main(per_rank[1], True) is None


def test_without_distributed_the_rows_are_returned_as_they_are():
    rows = [{"image_id": 7}]
    assert gather_on_main(rows, False) is rows
    assert gather_on_main(rows, True) == rows  # one process: gathering is the identity
