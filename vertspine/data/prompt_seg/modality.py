"""The imaging modality of an npz case: from its file-name prefix, or from a CSV column.

The challenge names files ``<Modality>_<dataset>_<case>.npz`` (training data, e.g.
``CT_AbdomenCT1K_Case_00001.npz``, ``Dermoscopy_ISIC2018_...``, ``Microscope_...``) and its
inference inputs ``2DBox_<Modality>...`` / ``3DBox_<Modality>...`` (``2DBox_X-Ray_...``,
``3DBox_CT_...``). :data:`MODALITY_PATTERNS` matches the modality token at the start of the name
(after an optional ``2DBox_``/``3DBox_``), case-insensitively, and only as a whole token (the
next character is not a letter): ``XRay``, ``X-Ray``, ``Xray``, ``CXR`` and ``XR`` are all X-ray
(DAFT's ``modalities3D.py`` pattern missed ``X-Ray``); ``OCT`` is not CT; ``CTA_...`` matches
nothing. Names that match no pattern are reported together in one error (or, on request, one
warning), never routed to a default.
"""
import csv
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "MODALITIES",
    "MODALITY_PATTERNS",
    "UnknownModalityError",
    "assign_modalities",
    "modality_from_name",
    "read_modality_csv",
]

# canonical modality -> the tokens that name it (regular expressions, case-insensitive)
MODALITY_PATTERNS: Dict[str, str] = {
    "CT": r"CT",
    "MR": r"MRI?",
    "PET": r"PET",
    "US": r"US|Ultra(?:sound)?",
    "XRay": r"X-?Ray|CXR|XR",
    "Dermoscopy": r"Dermoscop(?:y|e)",
    "Endoscopy": r"Endoscop(?:y|e)",
    "Fundus": r"Fundus",
    "Mammography": r"Mammo(?:graphy)?|Mamm",
    "Microscopy": r"Microscop(?:y|e)",
    "OCT": r"OCT",
}
MODALITIES: Tuple[str, ...] = tuple(MODALITY_PATTERNS)
_BOX_PREFIX = r"(?:[23]DBox_)?"
_COMPILED = {m: re.compile(rf"{_BOX_PREFIX}(?:{p})(?![A-Za-z])", re.IGNORECASE)
             for m, p in MODALITY_PATTERNS.items()}
_NAME = re.compile(r"[A-Za-z0-9-]+")  # modality names usable in dataset names
_LISTED = 10  # file names quoted per message


class UnknownModalityError(ValueError):
    """Files whose modality cannot be determined; the message lists them and the fixes."""


def modality_from_name(file_name: str) -> Optional[str]:
    """The canonical modality named by the start of ``file_name`` (a path is reduced to its
    base name), or None when no pattern matches."""
    name = os.path.basename(file_name)
    for modality, pattern in _COMPILED.items():
        if pattern.match(name):
            return modality
    return None


def read_modality_csv(csv_file: str, *, file_column: str = "file_name",
                      modality_column: str = "modality") -> Dict[str, str]:
    """``{file base name: modality}`` from a CSV with a header row.

    Raises:
        FileNotFoundError: no such CSV.
        ValueError: a column is missing, a file is listed twice, or a modality is empty or holds
            characters other than letters, digits and "-" (it becomes part of dataset names).
    """
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"Modality CSV not found: {csv_file}")
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (file_column, modality_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_file}: no column {missing} (columns: {reader.fieldnames}); "
                             "pass file_column=/modality_column= or rename the header.")
        table: Dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            name = os.path.basename(row[file_column].strip())
            modality = row[modality_column].strip()
            if not _NAME.fullmatch(modality):
                raise ValueError(f"{csv_file} line {line}: modality {modality!r} of {name!r} must "
                                 "be letters, digits or '-' (e.g. CT, XRay).")
            if name in table:
                raise ValueError(f"{csv_file} line {line}: {name!r} is listed twice.")
            table[name] = modality
    return table


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def assign_modalities(files: Iterable[str], modality_csv: Optional[str] = None, *,
                      unknown: str = "error", **csv_columns: str
                      ) -> Tuple[Dict[str, str], List[str]]:
    """The modality of every file, from the CSV when given, else from the file-name prefix.

    Args:
        files: npz paths.
        modality_csv: a CSV (see :func:`read_modality_csv`) that must list every file.
        unknown: "error" (raise, listing every file without a modality) or "skip" (leave them
            out, listed in the returned list).
        **csv_columns: ``file_column`` / ``modality_column`` for the CSV.
    Returns:
        ({path: modality}, [paths without a modality, when skipped]).
    Raises:
        UnknownModalityError: files without a modality and ``unknown == "error"``; the message
            lists them (up to 10, with the count) and the fixes.
    """
    if unknown not in ("error", "skip"):
        raise ValueError(f"unknown={unknown!r}: use 'error' or 'skip'.")
    table = None if modality_csv is None else read_modality_csv(modality_csv, **csv_columns)
    found, missing = {}, []
    for path in files:
        name = os.path.basename(path)
        modality = table.get(name) if table is not None else modality_from_name(name)
        if modality is None:
            missing.append(path)
        else:
            found[path] = modality
    if missing and unknown == "error":
        names = [os.path.basename(p) for p in missing]
        where = (f"is not listed in {modality_csv}: add a row per file" if table is not None else
                 "has no known modality prefix (" + ", ".join(MODALITIES) + ", optionally after "
                 "2DBox_/3DBox_): rename the file, pass modality_csv=<csv with file_name,modality>")
        raise UnknownModalityError(f"{len(missing)} file(s) {where}, or pass "
                                   f"unknown_modality='skip' to leave them out: {_listed(names)}")
    return found, missing
