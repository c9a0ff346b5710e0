"""What a checkpoint loader did with each key: loaded, skipped, missing, unexpected.

Shared by the model families' loaders (Sparse R-CNN, VertFound's SAM/CLIP/fusion weights) so
that every loader says what could not load in the same words, and ``strict`` loading can
name every offending key.
"""
from dataclasses import dataclass, field
from typing import Dict, List

__all__ = ["CheckpointReport"]

_LISTED = 20  # keys listed per section of a report; the rest are counted


@dataclass
class CheckpointReport:
    """What a loader did with each key.

    Attributes:
        loaded: keys copied into the model.
        skipped: keys present in both with different shapes, each with the reason; the model
            keeps its initialisation for them.
        missing: model keys absent from the checkpoint (the model keeps its initialisation).
        unexpected: checkpoint keys the model does not have, or that map to no part of it
            (ignored).
        title: what was loaded, first words of the printed report.
    """

    loaded: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    title: str = "Checkpoint"

    @property
    def complete(self) -> bool:
        """True when every model key was loaded and every checkpoint key used."""
        return not (self.skipped or self.missing or self.unexpected)

    def extend(self, other: "CheckpointReport", prefix: str = "") -> "CheckpointReport":
        """Add ``other``'s keys, each prefixed with ``prefix`` (e.g. "sam."); returns self."""
        self.loaded += [prefix + key for key in other.loaded]
        self.skipped.update({prefix + key: reason for key, reason in other.skipped.items()})
        self.missing += [prefix + key for key in other.missing]
        self.unexpected += [prefix + key for key in other.unexpected]
        return self

    def __str__(self) -> str:
        lines = [f"{self.title}: {len(self.loaded)} loaded, {len(self.skipped)} "
                 f"skipped, {len(self.missing)} missing, {len(self.unexpected)} unexpected."]
        sections = (
            ("Skipped, shape differs (model keeps its initialisation)",
             [f"{key}: {reason}" for key, reason in self.skipped.items()]),
            ("Missing from the checkpoint (model keeps its initialisation)", self.missing),
            ("Unexpected in the checkpoint (ignored)", self.unexpected),
        )
        for title, entries in sections:
            if entries:
                lines.append(f"{title}:")
                lines += [f"  {entry}" for entry in entries[:_LISTED]]
                if len(entries) > _LISTED:
                    lines.append(f"  ... and {len(entries) - _LISTED} more")
        return "\n".join(lines)
