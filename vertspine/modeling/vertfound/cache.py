"""Precomputed SAM box tokens (and CLIP tokens) with the identity of the model that made them.

A cache file (``torch.save`` of a dict, written atomically by ``scripts/generate_embedding.py``):

- ``identity``: what produced the tokens (:func:`encoder_identity`): for SAM the model type, the
  weights (checkpoint sha256, or "random init seed N"), a fingerprint of the weights actually
  used, the input size, pixel mean/std and the preprocessing; for CLIP (when its tokens are
  stored) the same kind of fields plus the layers.
- ``images``: image_id -> ``{"file_name", "annotation_keys", "boxes" [N, 4] XYXY original
  pixels, "sam_tokens" [N, C] (the mask token, followed by RoI features when
  ``FUSION.SAM_ROI_SIZE`` > 0), optionally "clip_tokens" [L, T, W]}``. ``annotation_keys`` are
  the annotations' json ids when the records keep them, else their index in the record's
  ``annotations``; rows follow the record's annotation order.

Training checks the identity against the model and refuses a mismatch, naming the field.
"""
import hashlib
import os
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor, nn

__all__ = ["CACHE_FORMAT", "CacheMismatchError", "EmbeddingCache", "compare_identity",
           "state_fingerprint"]

CACHE_FORMAT = "vertspine-vertfound-embeddings-1"


class CacheMismatchError(ValueError):
    """The cache was made by another model or preprocessing than the run's."""


def state_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's state (names, shapes, dtypes and float32 bytes, sorted by name)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def _first_difference(expected: Any, found: Any, prefix: str) -> Optional[str]:
    if isinstance(expected, dict) and isinstance(found, dict):
        keys = list(expected) + [k for k in found if k not in expected]
        for key in keys:  # the expected dict's order: declared fields before fingerprints
            diff = _first_difference(expected.get(key), found.get(key), f"{prefix}.{key}")
            if diff:
                return diff
        return None
    if isinstance(expected, (list, tuple)) and isinstance(found, (list, tuple)):
        same = len(expected) == len(found) and all(
            abs(float(a) - float(b)) < 1e-6 if isinstance(a, float) or isinstance(b, float)
            else a == b for a, b in zip(expected, found))
    else:
        same = expected == found
    return None if same else f"{prefix}: cache has {found!r}, the run has {expected!r}"


def compare_identity(expected: Dict[str, Any], found: Dict[str, Any], path: str,
                     parts=("sam", "clip")) -> None:
    """Raise :class:`CacheMismatchError` naming the first differing field of ``parts``."""
    for part in parts:
        if part not in found:
            raise CacheMismatchError(f"{path}: the cache holds no '{part}' tokens.")
        diff = _first_difference(expected[part], found[part], part)
        if diff:
            raise CacheMismatchError(
                f"{path} was made by another model or preprocessing ({diff}). Regenerate it with "
                "scripts/generate_embedding.py for this config, or set MODEL.VERTFOUND.CACHE.PATH "
                "to ''.")


class EmbeddingCache:
    """A loaded cache file (see the module doc)."""

    def __init__(self, data: Dict[str, Any], path: str = "<memory>"):
        if data.get("format") != CACHE_FORMAT:
            raise CacheMismatchError(f"{path} is not a VertFound embedding cache (format "
                                     f"{data.get('format')!r}, expected {CACHE_FORMAT!r}).")
        self.path = path
        self.identity: Dict[str, Any] = data["identity"]
        self.images: Dict[Any, Dict[str, Any]] = data["images"]

    @classmethod
    def load(cls, path: str) -> "EmbeddingCache":
        if not os.path.isfile(path):
            raise ValueError(f"MODEL.VERTFOUND.CACHE.PATH {path!r} does not exist; make it with "
                             "scripts/generate_embedding.py or set the key to ''.")
        return cls(torch.load(path, map_location="cpu", weights_only=False), path)

    @property
    def has_clip(self) -> bool:
        return "clip" in self.identity

    def lookup(self, image_id: Any, file_name: str) -> Optional[Dict[str, Any]]:
        """The entry of an image, or None when absent or made for another file."""
        entry = self.images.get(image_id)
        if entry is None or os.path.abspath(entry["file_name"]) != os.path.abspath(file_name):
            return None
        return entry

    def sam_tokens(self, entry: Dict[str, Any], keys: List[Any], boxes: Tensor) -> Tensor:
        """Cached tokens [n, C] of the annotations ``keys``, checked against ``boxes``.

        Args:
            entry: from :meth:`lookup`.
            keys: annotation keys (json ids, or indices into the record's annotations).
            boxes: [n, 4] the same boxes XYXY in original image pixels.
        Raises:
            CacheMismatchError: a key is not cached, or its cached box differs by more than a
                pixel (the cache was made from other annotations or a transformed image).
        """
        position = {key: i for i, key in enumerate(entry["annotation_keys"])}
        missing = [k for k in keys if k not in position]
        if missing:
            raise CacheMismatchError(f"{self.path}: image {entry['file_name']} has no cached "
                                     f"token for annotations {missing[:5]}; regenerate the cache.")
        rows = torch.tensor([position[k] for k in keys], dtype=torch.long)
        cached = entry["boxes"][rows].float()
        if len(rows) and (cached - boxes.cpu().float()).abs().max() > 1.0:
            raise CacheMismatchError(
                f"{self.path}: cached boxes of {entry['file_name']} differ from the record's "
                "boxes by more than 1 px: the cache is stale, or geometric augmentations moved "
                "the boxes (turn them off when using a cache).")
        return entry["sam_tokens"][rows].float()
