"""Writing the phantom dataset to disk as PNGs and COCO jsons, and caching it by manifest.

Layout under ``root``::

    images/{split}/{split}_{i:05d}.png        8-bit grayscale
    annotations/vertebrae_{split}.json        COCO: 25 level categories, masks as polygons
    annotations/lesions_{split}.json          COCO: 7 lesion categories, every image listed
    phantom_manifest.json                     generator version + all PhantomConfig fields

COCO ``file_name`` is relative to ``images/{split}`` (the ``image_root``); image ids are
``i + 1``; ``bbox`` is [x, y, width, height] in image pixels (origin top-left, y down).
"""
import functools
import json
import os
from typing import Any, Dict, List, Optional, Sequence

from vertspine.utils.file_io import write_json, write_png

from ..generated_folder import ensure_generated_folder
from ..spine_categories import LESION_CLASSES, SPLITS, VERTEBRA_LEVELS
from .config import GENERATOR_VERSION, PhantomConfig
from .generator import generate_phantom_image

__all__ = [
    "MANIFEST_NAME",
    "ensure_phantom_dataset",
    "generate_phantom_dataset",
    "phantom_dataset_paths",
]

MANIFEST_NAME = "phantom_manifest.json"
_COMPACT_JSON = {"indent": None, "separators": (",", ":")}  # the bytes tests and caches compare


def phantom_dataset_paths(root: str) -> Dict[str, Any]:
    """Where the dataset under ``root`` keeps its files (nothing is created).

    Returns:
        dict with ``root``, ``manifest`` and, per split name, a dict with ``image_root``,
        ``vertebrae_json`` and ``lesions_json``.
    """
    paths: Dict[str, Any] = {"root": root, "manifest": os.path.join(root, MANIFEST_NAME)}
    for split in SPLITS:
        paths[split] = {
            "image_root": os.path.join(root, "images", split),
            "vertebrae_json": os.path.join(root, "annotations", f"vertebrae_{split}.json"),
            "lesions_json": os.path.join(root, "annotations", f"lesions_{split}.json"),
        }
    return paths


def generate_phantom_dataset(root: str, cfg: Optional[PhantomConfig] = None) -> Dict[str, Any]:
    """Write every split of the dataset into ``root`` (created if needed; files overwritten).

    Each file is written atomically (:mod:`vertspine.utils.file_io`), the dataset as a whole
    is not: use :func:`ensure_phantom_dataset` where other processes may read or write the same
    folder. The manifest is written last.

    Args:
        root: output folder.
        cfg: dataset parameters; None means ``PhantomConfig()``.
    Returns:
        the paths written (see :func:`phantom_dataset_paths`).
    """
    cfg = cfg or PhantomConfig()
    paths = phantom_dataset_paths(root)
    for split in SPLITS:
        _write_split(paths[split], cfg, split)
    write_json(paths["manifest"], _manifest(cfg), **_COMPACT_JSON)
    return paths


def ensure_phantom_dataset(root: str, cfg: Optional[PhantomConfig] = None) -> Dict[str, Any]:
    """Make ``root`` hold the dataset of ``cfg``; do nothing when its manifest already matches.

    Generation goes (:func:`~vertspine.data.generated_folder.ensure_generated_folder`) to a
    temporary folder next to ``root`` that is then renamed onto it, so
    readers never see a partial dataset and concurrent callers are safe: when another
    process published the same dataset first, this one drops its copy. A stale dataset
    (other manifest) is moved aside and deleted; a non-empty ``root`` without a manifest is
    never touched.

    Args:
        root: dataset folder.
        cfg: dataset parameters; None means ``PhantomConfig()``.
    Returns:
        the dataset paths (see :func:`phantom_dataset_paths`).
    Raises:
        FileExistsError: ``root`` is a non-empty folder that is not a phantom dataset.
    """
    cfg = cfg or PhantomConfig()
    write_into = functools.partial(generate_phantom_dataset, cfg=cfg)
    ensure_generated_folder(root, _manifest(cfg), write_into, manifest_name=MANIFEST_NAME,
                            what="phantom dataset")
    return phantom_dataset_paths(root)


def _write_split(paths: Dict[str, str], cfg: PhantomConfig, split: str) -> None:
    """Render every image of ``split`` and write its PNGs and both COCO jsons."""
    os.makedirs(paths["image_root"], exist_ok=True)
    images, vertebrae, lesions = [], [], []
    for index in range(cfg.num_images(split)):
        image, image_vertebrae, image_lesions = generate_phantom_image(cfg, split, index)
        file_name = f"{split}_{index:05d}.png"
        write_png(os.path.join(paths["image_root"], file_name), image)
        image_id = index + 1
        height, width = cfg.size
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        vertebrae += [_coco_annotation(a, image_id) for a in image_vertebrae]
        lesions += [_coco_annotation(a, image_id) for a in image_lesions]
    write_json(paths["vertebrae_json"], _coco(images, vertebrae, VERTEBRA_LEVELS, "vertebra"),
               **_COMPACT_JSON)
    write_json(paths["lesions_json"], _coco(images, lesions, LESION_CLASSES, "lesion"),
               **_COMPACT_JSON)


def _coco_annotation(annotation: Dict[str, Any], image_id: int) -> Dict[str, Any]:
    """A COCO annotation (id assigned later) from a generator dict with an XYXY ``bbox``."""
    x0, y0, x1, y1 = annotation["bbox"]
    return {
        "image_id": image_id,
        "category_id": annotation["category_id"],
        "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
        "area": round(float(annotation["area"]), 2),
        "iscrowd": 0,
        "segmentation": annotation["segmentation"],
    }


def _coco(
    images: List[Dict], annotations: List[Dict], names: Sequence[str], supercategory: str
) -> Dict:
    """A COCO instances dict; annotation and category ids are 1-based in order."""
    return {
        "info": {
            "description": f"vertspine phantom {supercategory} annotations",
            "version": GENERATOR_VERSION,
        },
        "images": images,
        "annotations": [{"id": i + 1, **annotation} for i, annotation in enumerate(annotations)],
        "categories": [
            {"id": i + 1, "name": name, "supercategory": supercategory}
            for i, name in enumerate(names)
        ],
    }


def _manifest(cfg: PhantomConfig) -> Dict[str, Any]:
    """What identifies a generated dataset, as it reads back from JSON."""
    return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, "config": cfg.to_dict()}))
