"""Gathering an evaluator's per-image rows from every process onto the main one."""
import itertools
from typing import List, Optional, TypeVar

from detectron2.utils import comm

__all__ = ["gather_on_main"]

Row = TypeVar("Row")


def gather_on_main(rows: List[Row], distributed: bool) -> Optional[List[Row]]:
    """Every process's ``rows``, concatenated in rank order, on the main process.

    Args:
        rows: what this process collected (any picklable items).
        distributed: gather across processes; False returns ``rows`` as they are.
    Returns:
        the gathered rows on the main process (or without ``distributed``); None on the other
        processes, which then have nothing to evaluate.
    """
    if not distributed:
        return rows
    comm.synchronize()
    gathered = comm.gather(rows, dst=0)
    if not comm.is_main_process():
        return None
    return list(itertools.chain(*gathered))
