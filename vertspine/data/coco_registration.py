"""Register named COCO-json datasets in detectron2's catalogs, validated when they load.

:func:`register_coco_dataset` registers a name in ``DatasetCatalog`` (lazily: nothing is read
until the dataset is first used) and sets its ``MetadataCatalog`` entry (``json_file``,
``image_root``, ``evaluator_type``, extra metadata). Loading runs ``prepare()`` once if given,
then :func:`~vertspine.data.coco_validation.load_validated_coco_json` (the checks are listed
there).

Names: re-registering a name with the same arguments is a no-op, with different ones an error;
:func:`unregister_dataset` frees a name. Stale caches: detectron2's ``COCOEvaluator`` writes
``OUTPUT_DIR/<name>_coco_format.json`` and reuses it across runs, but only for datasets without
``json_file`` metadata; datasets registered here always have it, so the evaluator reads the
current json (note: that raw json, not the cleaned records, is the evaluation ground truth).
"""
import functools
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from .coco_validation import DatasetValidationError, load_validated_coco_json

__all__ = [
    "DatasetValidationError",
    "load_validated_coco_json",
    "register_coco_dataset",
    "register_datasets_from_config",
    "unregister_dataset",
]


@dataclass(frozen=True)
class _Registration:
    """The arguments a dataset name was registered with (compared on re-registration)."""

    json_file: str
    image_root: str
    num_classes: Optional[int]
    prepare: Optional[Callable[[], Any]]
    check_images: bool
    metadata: Dict[str, Any]


_REGISTRATIONS: Dict[str, _Registration] = {}


def register_coco_dataset(
    name: str,
    json_file: str,
    image_root: str,
    *,
    num_classes: Optional[int] = None,
    prepare: Optional[Callable[[], Any]] = None,
    check_images: bool = True,
    **metadata: Any,
) -> None:
    """Register a COCO-json dataset under ``name`` (lazily; validated when first loaded).

    Args:
        name: the dataset name used in ``cfg.DATASETS.TRAIN``/``TEST``.
        json_file: COCO instances json; made absolute.
        image_root: folder the json's ``file_name`` entries are relative to; made absolute.
        num_classes: the number of categories the json must have; None or 0 accepts any.
        prepare: called with no arguments, once, before the first load (e.g. writes the data).
        check_images: check that every image file exists when loading.
        **metadata: extra ``MetadataCatalog`` entries, e.g. ``thing_classes`` (then checked
            against the json) or ``evaluator_type`` (default "coco").
    Raises:
        ValueError: ``name`` is already registered with different arguments.
    """
    registration = _Registration(
        json_file=os.path.abspath(json_file),
        image_root=os.path.abspath(image_root),
        num_classes=num_classes or None,
        prepare=prepare,
        check_images=check_images,
        metadata=_normalized_metadata(metadata),
    )
    if name in DatasetCatalog:
        if _REGISTRATIONS.get(name) == registration:
            return
        raise ValueError(_conflict_message(name, registration))
    DatasetCatalog.register(name, _make_loader(name, registration))
    MetadataCatalog.get(name).set(
        json_file=registration.json_file,
        image_root=registration.image_root,
        **registration.metadata,
    )
    _REGISTRATIONS[name] = registration


def unregister_dataset(name: str, *, missing_ok: bool = False) -> None:
    """Remove ``name`` from ``DatasetCatalog`` and ``MetadataCatalog``, freeing the name.

    Args:
        name: a registered dataset name.
        missing_ok: do nothing when ``name`` is not registered (a ``register_*`` function that
            re-registers its names on another root).
    Raises:
        KeyError: ``name`` is not registered and not ``missing_ok``.
    """
    if name not in DatasetCatalog:
        if missing_ok:
            return
        raise KeyError(f"Dataset '{name}' is not registered, so it cannot be unregistered.")
    DatasetCatalog.remove(name)
    MetadataCatalog.pop(name, None)
    _REGISTRATIONS.pop(name, None)


def register_datasets_from_config(cfg) -> List[str]:
    """Register every ``[name, json_file, image_root]`` of ``cfg.DATASETS.COCO_JSON``.

    Each must have ``cfg.DATASETS.COCO_NUM_CLASSES`` categories (0 = any).

    Returns:
        The registered names, in config order.
    Raises:
        ValueError: an entry is not a 3-item list, or a name conflicts.
    """
    names = []
    for entry in cfg.DATASETS.COCO_JSON:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3):
            raise ValueError(
                f"DATASETS.COCO_JSON entry {entry!r} is not of the form "
                "[name, json_file, image_root], e.g. "
                "['spine_train', 'datasets/spine/train.json', 'datasets/spine/images']."
            )
        name, json_file, image_root = entry
        register_coco_dataset(
            name, json_file, image_root, num_classes=cfg.DATASETS.COCO_NUM_CLASSES
        )
        names.append(name)
    return names


def _make_loader(name: str, registration: _Registration) -> Callable[[], List[Dict[str, Any]]]:
    """The ``DatasetCatalog`` function of a registration; runs ``prepare`` once, then loads."""
    prepare = functools.cache(registration.prepare) if registration.prepare else None

    def load() -> List[Dict[str, Any]]:
        if prepare is not None:
            prepare()
        return load_validated_coco_json(
            registration.json_file,
            registration.image_root,
            name,
            num_classes=registration.num_classes,
            check_images=registration.check_images,
            thing_classes=registration.metadata.get("thing_classes"),
        )

    return load


def _normalized_metadata(metadata: Dict[str, Any]) -> Dict[str, Any]:
    """Metadata with the default evaluator_type and thing_classes as a list (as detectron2 sets)."""
    normalized = {"evaluator_type": "coco", **metadata}
    if "thing_classes" in normalized:
        normalized["thing_classes"] = list(normalized["thing_classes"])
    return normalized


def _conflict_message(name: str, new: _Registration) -> str:
    """Why ``name`` cannot be registered again with ``new``, and what to do."""
    old = _REGISTRATIONS.get(name)
    if old is None:
        previous = f"by other code (json_file={MetadataCatalog.get(name).get('json_file')})"
    else:
        changed = sorted(k for k in vars(new) if getattr(old, k) != getattr(new, k))
        previous = f"with json_file={old.json_file} (now differing in: {', '.join(changed)})"
    return (
        f"Dataset '{name}' is already registered {previous}; cannot register it again with "
        f"json_file={new.json_file}. Pick a new dataset name, or call "
        f"unregister_dataset('{name}') first (and delete any stale "
        f"OUTPUT_DIR/{name}_coco_format.json)."
    )
