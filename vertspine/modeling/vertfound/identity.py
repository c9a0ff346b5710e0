"""The identity of the encoders that produce cacheable tokens.

A cache is valid for a run only if the run would compute the same tokens: same SAM (type,
weights, input size, pixel statistics, preprocessing) and, for cached CLIP tokens, the same CLIP
visual tower, layers and preprocessing. :func:`embedding_identity` describes the model; the
cache stores the description it was made with and :func:`~.cache.compare_identity` compares.
"""
import os
from typing import Any, Dict

from vertspine.utils.file_io import file_sha256

from .cache import state_fingerprint
from .clip_encoder import clip_preprocess_description
from .sam_encoder import SAM_PREPROCESSING

__all__ = ["describe_weights", "embedding_identity"]

_SHA_MEMO: Dict[str, str] = {}


def describe_weights(path: str, seed: int) -> str:
    """"checkpoint sha256 <hex>" for a weights file, "random init seed N" without one, or the
    open_clip tag itself ("openai")."""
    if not path:
        return f"random init seed {seed}"
    if not os.path.isfile(path):
        return f"pretrained tag {path}"
    if path not in _SHA_MEMO:
        _SHA_MEMO[path] = file_sha256(path)
    return f"checkpoint sha256 {_SHA_MEMO[path]}"


def embedding_identity(model, include_clip: bool) -> Dict[str, Any]:
    """What a VertFound model's cacheable tokens depend on.

    Args:
        model: a :class:`~.vertfound.VertFound`.
        include_clip: describe the CLIP image tokens too.
    Returns:
        {"sam": {...}, "clip": {...}?} with model type, weights, ``state_sha256`` (a
        fingerprint of the weights in use, so a later weight load is noticed), image size,
        pixel mean/std, preprocessing and (SAM) the token taken.
    """
    sam = model.sam
    sources = model.sources
    identity = {
        "sam": {
            "model_type": sources.get("sam_model_type", "unknown"),
            "weights": describe_weights(sources.get("sam_checkpoint", ""),
                                        sources.get("sam_seed", 0)),
            "image_size": model.sam_encoder.image_size,
            "pixel_mean": [float(v) for v in sam.pixel_mean.flatten()],
            "pixel_std": [float(v) for v in sam.pixel_std.flatten()],
            "preprocessing": SAM_PREPROCESSING,
            "input_format": model.input_format,
            "token": "two-way transformer output at mask token slot 0 (multimask off)",
            "roi": [model.sam_encoder.roi_size, model.sam_encoder.roi_context,
                    *model.sam_encoder.roi_shifts],
            "state_sha256": state_fingerprint(sam),
        }
    }
    if include_clip:
        encoder = model.clip_encoder
        identity["clip"] = {
            "model": sources.get("clip_model", "unknown"),
            "weights": describe_weights(sources.get("clip_pretrained", ""),
                                        sources.get("clip_seed", 0)),
            "image_size": encoder.image_size,
            "mean": encoder.mean,
            "std": encoder.std,
            "layers": list(encoder.layers),
            "preprocessing": clip_preprocess_description(encoder.resize),
            "input_format": model.input_format,
            "state_sha256": state_fingerprint(model.clip.visual),
        }
    return identity
