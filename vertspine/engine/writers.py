"""The metrics.json writer of a run that can be resumed.

A run killed after its last checkpoint has written metrics.json lines for iterations that the
resumed run trains again; detectron2's JSONWriter would append them a second time, with other
values. :meth:`MetricsJSONWriter.drop_from` removes them when the run resumes.
"""
import json
import logging
import math

from detectron2.utils.events import JSONWriter
from detectron2.utils.file_io import PathManager

from vertspine.utils.file_io import atomic_write

__all__ = ["MetricsJSONWriter"]

logger = logging.getLogger(__name__)


def _iteration(line: str) -> float:
    """The ``iteration`` of a metrics.json line; infinity for a line cut short by a kill."""
    try:
        return json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class MetricsJSONWriter(JSONWriter):
    """detectron2's JSONWriter (one JSON object per line, appended) that can drop the lines
    of the iterations a resumed run repeats."""

    def __init__(self, json_file: str, window_size: int = 20):
        super().__init__(json_file, window_size)
        self.path = json_file

    def drop_from(self, iteration: int) -> int:
        """Rewrite the file atomically without the lines of ``iteration`` and later (and
        without a line cut short by a kill); later writes append to the rewritten file.

        Returns:
            the number of lines dropped.
        """
        self._file_handle.close()
        with open(self.path) as f:
            lines = f.readlines()
        kept = [line.rstrip("\n") + "\n" for line in lines if _iteration(line) < iteration]
        with atomic_write(self.path, "w") as f:
            f.writelines(kept)
        self._file_handle = PathManager.open(self.path, "a")
        dropped = len(lines) - len(kept)
        if dropped:
            logger.info("%s: dropped %d lines of iterations >= %d, which the resumed run "
                        "trains again", self.path, dropped, iteration)
        return dropped
