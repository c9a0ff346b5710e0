"""Loading a state dict into a module key for key, with a :class:`CheckpointReport`.

Two steps, so that every part of a model is checked before any part is touched:
:func:`match_state_dict` compares a state dict (already in the module's names) with the
module's own (:func:`compare_state_dicts`, which works on two state dicts) and says what would
load; :func:`finish_loading` raises (``strict``) before anything is copied when the report is
incomplete, else copies, logs and returns the report.
"""
import logging
from typing import Callable, Dict, Mapping, Sequence, Tuple

from torch import Tensor, nn

from vertspine.utils.checkpoint_report import CheckpointReport

__all__ = ["compare_state_dicts", "finish_loading", "match_state_dict"]

logger = logging.getLogger(__name__)


def match_state_dict(module: nn.Module, state: Mapping[str, Tensor],
                     title: str) -> Tuple[CheckpointReport, Callable[[], None]]:
    """The report of loading ``state`` into ``module``, and the function that loads it.

    Keys are compared by :func:`compare_state_dicts`. Nothing is copied until the returned
    function runs (``load_state_dict(strict=False)``; ``copy_`` casts e.g. fp16 tensors to the
    module's dtype).

    Args:
        module: the module to fill.
        state: ``{name: tensor}`` in the module's names.
        title: first words of the printed report (what is loaded).
    """
    report, loadable = compare_state_dicts(module.state_dict(), state, title)
    return report, lambda: module.load_state_dict(loadable, strict=False)


def compare_state_dicts(expected: Mapping[str, Tensor], state: Mapping[str, Tensor],
                        title: str) -> Tuple[CheckpointReport, Dict[str, Tensor]]:
    """What of ``state`` fits a model whose state dict is ``expected``, key for key.

    Keys ``expected`` has with the same shape load; the others are skipped (shape differs),
    unexpected (not in ``expected``) or missing (in ``expected``, not in ``state``).

    Args:
        expected: the target's ``state_dict()`` (names and shapes).
        state: ``{name: tensor}`` in the target's names.
        title: first words of the printed report (what is loaded).
    Returns:
        (the report, ``{name: tensor}`` of the keys that load).
    """
    report = CheckpointReport(title=title)
    loadable = {}
    for key, value in state.items():
        if key not in expected:
            report.unexpected.append(key)
        elif value.shape != expected[key].shape:
            report.skipped[key] = (f"checkpoint {list(value.shape)}, "
                                   f"model {list(expected[key].shape)}")
        else:
            loadable[key] = value
            report.loaded.append(key)
    report.missing = [key for key in expected if key not in state]
    return report, loadable


def finish_loading(report: CheckpointReport, strict: bool,
                   loads: Sequence[Callable[[], None]]) -> CheckpointReport:
    """Raise (``strict`` and incomplete) before anything is copied; else run ``loads``, log the
    report (a warning when incomplete) and return it.

    Raises:
        ValueError: ``strict`` and ``report`` is incomplete; the message holds the report.
    """
    if strict and not report.complete:
        raise ValueError(f"strict loading failed (nothing was loaded).\n{report}")
    for load in loads:
        load()
    logger.log(logging.INFO if report.complete else logging.WARNING, "%s", report)
    return report
