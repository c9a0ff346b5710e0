"""Named VerSe datasets: ``verse19_{train,val,test}`` and ``verse20_{train,val,test}``.

They read the output of ``tools/convert_verse.py`` (sagittal CT slices, one box per vertebra,
categories 1..25 = C1..L6) under ``$VERTSPINE_DATASETS`` (default ``datasets``)::

    <root>/verse19/images/{split}/*.png
    <root>/verse19/annotations/verse19_{split}.json      (likewise verse20)

Registration is lazy and never fails when the files are missing; loading a split before its
conversion raises FileNotFoundError naming the json and the command that writes it. Metadata:
``thing_classes`` and ``level_names`` C1..L6, ``evaluator_type="vertebra_level"``.
"""
import functools
import os
from typing import List, Optional

from .coco_registration import register_coco_dataset, unregister_dataset
from .datasets_root import datasets_root, require_converted_json
from .spine_categories import SPLITS, VERTEBRA_LEVELS
from .verse.convert import verse_output_paths

__all__ = ["VERSE_DATASET_NAMES", "VERSE_RELEASES", "register_verse_datasets", "require_verse_converted"]

VERSE_RELEASES = ("verse19", "verse20")
VERSE_DATASET_NAMES = tuple(f"{release}_{split}" for release in VERSE_RELEASES for split in SPLITS)
CONVERT_COMMAND = "python tools/convert_verse.py --input <VerSe folder> --name {name} --output {output}"


def require_verse_converted(output_root: str, name: str, split: str) -> None:
    """Raise FileNotFoundError naming the missing json and the conversion command."""
    require_converted_json(verse_output_paths(output_root, name)[split]["json_file"],
                           f"{name}_{split}", CONVERT_COMMAND.format(name=name, output=output_root),
                           name)


def register_verse_datasets(root: Optional[str] = None) -> List[str]:
    """(Re-)register the six VerSe dataset names on converted data under ``root``.

    Args:
        root: the folder holding ``verse19/`` and ``verse20/``; None means
            ``$VERTSPINE_DATASETS`` (default ``datasets``).
    Returns:
        the registered names.
    """
    root = root or datasets_root()
    for release in VERSE_RELEASES:
        output_root = os.path.join(root, release)
        paths = verse_output_paths(output_root, release)
        for split in SPLITS:
            name = f"{release}_{split}"
            unregister_dataset(name, missing_ok=True)
            register_coco_dataset(
                name,
                paths[split]["json_file"],
                paths[split]["image_root"],
                num_classes=len(VERTEBRA_LEVELS),
                prepare=functools.partial(require_verse_converted, output_root, release, split),
                thing_classes=list(VERTEBRA_LEVELS),
                level_names=list(VERTEBRA_LEVELS),
                evaluator_type="vertebra_level",
            )
    return list(VERSE_DATASET_NAMES)
