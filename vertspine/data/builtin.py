"""Named phantom datasets in detectron2's ``DatasetCatalog`` / ``MetadataCatalog``.

Importing this module registers ``phantom_vertebrae_{train,val,test}`` (25 VerSe level classes,
with masks) and ``phantom_lesions_{train,val,test}`` (7 VinDr-SpineXR lesion classes, normal
images included as negatives) under ``$VERTSPINE_DATASETS/phantom`` (default
``datasets/phantom``, relative to the working directory at import). Nothing is generated at
import: the data is written by :func:`~vertspine.data.phantom.ensure_phantom_dataset` the first
time one of these datasets is loaded, and reused while its manifest matches.
``phantom_{vertebrae,lesions}_train_1000`` draw the same train split to 1000 images (its first
200 are ``phantom_*_train``'s) under ``$VERTSPINE_DATASETS/phantom_train_1000``.

It also registers ``vindr_spinexr_{train,val,test}`` (the 7 VinDr-SpineXR lesion classes,
``evaluator_type="vindr"``) on the output of ``tools/convert_vindr.py`` under
``$VERTSPINE_DATASETS/vindr_spinexr``; loading one before the conversion raises an error
naming the missing json and the command to run.

And ``verse19_{train,val,test}`` / ``verse20_{train,val,test}`` (25 vertebra levels,
``evaluator_type="vertebra_level"``) on the output of ``tools/convert_verse.py``: see
:mod:`.builtin_verse`. ``phantom_vertebrae_*`` also use the ``vertebra_level`` evaluator.
"""
import functools
from typing import List, Optional

from .builtin_classification import register_builtin_classification_datasets
from .coco_registration import register_coco_dataset, unregister_dataset
from .datasets_root import datasets_root
from .phantom_spine_seg import register_phantom_spine_seg
from .prompt_seg import register_phantom_prompt_seg
from .phantom_vessels import register_phantom_vessels
from .phantom import PhantomConfig, ensure_phantom_dataset, phantom_dataset_paths
from .builtin_verse import register_verse_datasets
from .spine_categories import LESION_CLASSES, SPLITS, VERTEBRA_LEVELS
from .vindr import default_vindr_root, require_converted, vindr_dataset_paths

__all__ = [
    "PHANTOM_DATASET_NAMES", "PHANTOM_LARGE_TRAIN_IMAGES", "VINDR_DATASET_NAMES",
    "default_phantom_root", "register_phantom_datasets", "register_phantom_large_train",
    "register_vindr_datasets",
]

_TASKS = {"vertebrae": VERTEBRA_LEVELS, "lesions": LESION_CLASSES}
PHANTOM_DATASET_NAMES = tuple(f"phantom_{task}_{split}" for task in _TASKS for split in SPLITS)
VINDR_DATASET_NAMES = tuple(f"vindr_spinexr_{split}" for split in SPLITS)


def default_phantom_root() -> str:
    """``$VERTSPINE_DATASETS/phantom``, with ``datasets`` when the variable is unset."""
    return datasets_root("phantom")


def register_phantom_datasets(
    root: Optional[str] = None, cfg: Optional[PhantomConfig] = None
) -> List[str]:
    """(Re-)register the four phantom datasets on the data under ``root``.

    Names already registered are removed first, so this can be called again with another
    root or config.

    Args:
        root: dataset folder; None means :func:`default_phantom_root`.
        cfg: dataset parameters; None means ``PhantomConfig()`` (200 train, 50 val, 256 px).
    Returns:
        the registered names: phantom_vertebrae_train/val, phantom_lesions_train/val.
    """
    root = root or default_phantom_root()
    cfg = cfg or PhantomConfig()
    paths = phantom_dataset_paths(root)
    prepare = functools.partial(ensure_phantom_dataset, root, cfg)
    for task in _TASKS:
        for split in SPLITS:
            _register_phantom_split(f"phantom_{task}_{split}", task, paths[split], prepare)
    return list(PHANTOM_DATASET_NAMES)


def _register_phantom_split(name: str, task: str, split_paths, prepare) -> None:
    """(Re-)register one phantom split of ``task`` ("vertebrae" or "lesions") as ``name``.

    Args:
        split_paths: the split's entry of :func:`phantom_dataset_paths`.
        prepare: called before the json is read (generates the dataset when needed).
    """
    classes = _TASKS[task]
    extra = {"level_names": list(VERTEBRA_LEVELS)} if task == "vertebrae" else {}
    unregister_dataset(name, missing_ok=True)
    register_coco_dataset(
        name,
        split_paths[f"{task}_json"],
        split_paths["image_root"],
        num_classes=len(classes),
        prepare=prepare,
        thing_classes=list(classes),
        evaluator_type="vertebra_level" if task == "vertebrae" else "coco",
        **extra,
    )


PHANTOM_LARGE_TRAIN_IMAGES = 1000


def register_phantom_large_train(
    root: Optional[str] = None, num_train: int = PHANTOM_LARGE_TRAIN_IMAGES
) -> List[str]:
    """(Re-)register ``phantom_{vertebrae,lesions}_train_<num_train>``: the phantom's train split
    drawn to ``num_train`` images, under ``root`` (default
    ``$VERTSPINE_DATASETS/phantom_train_<num_train>``).

    Image ``i`` of a split depends only on (seed, split, i), so the first 200 images equal
    ``phantom_*_train`` and none is a val or test image. Nothing is generated until the dataset
    is first loaded (about 0.1 s per image).

    Returns:
        the registered names.
    """
    root = root or datasets_root(f"phantom_train_{num_train}")
    cfg = PhantomConfig(num_train=num_train, num_val=0, num_test=0)
    paths = phantom_dataset_paths(root)["train"]
    prepare = functools.partial(ensure_phantom_dataset, root, cfg)
    names = [f"phantom_{task}_train_{num_train}" for task in _TASKS]
    for name, task in zip(names, _TASKS):
        _register_phantom_split(name, task, paths, prepare)
    return names


def register_vindr_datasets(root: Optional[str] = None) -> List[str]:
    """(Re-)register ``vindr_spinexr_{train,val,test}`` on the converted data under ``root``.

    Lazy: nothing is read until a dataset is loaded; then a missing json raises
    FileNotFoundError naming it and the ``tools/convert_vindr.py`` command.

    Args:
        root: the converter's output folder; None means ``$VERTSPINE_DATASETS/vindr_spinexr``.
    Returns:
        the registered names.
    """
    root = root or default_vindr_root()
    paths = vindr_dataset_paths(root)
    for split, name in zip(SPLITS, VINDR_DATASET_NAMES):
        unregister_dataset(name, missing_ok=True)
        register_coco_dataset(
            name,
            paths[split]["json"],
            paths[split]["image_root"],
            num_classes=len(LESION_CLASSES),
            prepare=functools.partial(require_converted, root, split),
            thing_classes=list(LESION_CLASSES),
            evaluator_type="vindr",
        )
    return list(VINDR_DATASET_NAMES)


register_phantom_datasets()
register_phantom_large_train()  # phantom_{vertebrae,lesions}_train_1000: more generated training images
register_vindr_datasets()
register_verse_datasets()  # verse19_*/verse20_*: tools/convert_verse.py output, lazy
register_builtin_classification_datasets()  # image-level views: phantom_abnormal_*, vindr_spinexr_cls_*
register_phantom_spine_seg(default_phantom_root())  # phantom_spine_seg_{train,val,test}: vertebra masks
register_phantom_prompt_seg()  # phantom_promptseg_{2d,3d}_{train,val,test}: npz cases, lazy
register_phantom_vessels()  # phantom_vessels_{train,val,test,shift_test,shift_train}: 3D, lazy
