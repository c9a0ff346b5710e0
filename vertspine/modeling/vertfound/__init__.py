"""VertFound (Wu et al., MICCAI 2024) as a vertspine model family.

Importing this package registers the ``VertFound`` meta-architecture and the
``VertFoundDatasetMapper`` (``INPUT.DATASET_MAPPER``). Configure it with
:func:`add_vertfound_config` (``MODEL.VERTFOUND``).
"""
from .cache import CacheMismatchError, EmbeddingCache
from .clip_encoder import ClipImageTokens, build_clip
from .config import add_vertfound_config
from .dataset_mapper import VertFoundDatasetMapper
from .decoding import monotone_viterbi, top_to_bottom
from .fusion import VertebraFusion
from .loss import focal_loss, log_sinkhorn, ordering_loss, ot_alignment_loss
from .sam_encoder import SamBoxEncoder, build_vertfound_sam
from .text import LevelTextClassifier
from .vertfound import VertFound
from .weights import (
    build_clip_from_openai_checkpoint,
    load_clip_checkpoint,
    load_vertfound_checkpoint,
)

__all__ = [
    "CacheMismatchError",
    "ClipImageTokens",
    "EmbeddingCache",
    "LevelTextClassifier",
    "SamBoxEncoder",
    "VertFound",
    "VertFoundDatasetMapper",
    "VertebraFusion",
    "add_vertfound_config",
    "build_clip",
    "build_clip_from_openai_checkpoint",
    "build_vertfound_sam",
    "focal_loss",
    "load_clip_checkpoint",
    "load_vertfound_checkpoint",
    "log_sinkhorn",
    "monotone_viterbi",
    "ordering_loss",
    "ot_alignment_loss",
    "top_to_bottom",
]
