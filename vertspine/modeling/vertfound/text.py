"""Classifier weights from CLIP's text tower: one embedding per vertebra level.

Each level name ("C1" ... "L6", optionally expanded to "cervical vertebra C1") is put into every
prompt template, encoded by CLIP's text tower, L2-normalised, averaged over templates and
normalised again. With a frozen text tower the result is computed once and kept as a buffer
(recomputed after weights are loaded); with a trainable one it is recomputed (with gradients)
in every training forward and once more for inference.
"""
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LevelTextClassifier", "expand_level_name", "level_prompts"]

_REGIONS = {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}


def expand_level_name(name: str) -> str:
    """"C1" -> "cervical vertebra C1" (T thoracic, L lumbar, S sacral); others unchanged."""
    if len(name) >= 2 and name[0] in _REGIONS and name[1:].isdigit():
        return f"{_REGIONS[name[0]]} vertebra {name}"
    return name


def level_prompts(names: Sequence[str], templates: Sequence[str], expand: bool) -> List[str]:
    """Prompts class-major: ``[t.format(name) for name in names for t in templates]``.

    Raises:
        ValueError: no templates, or a template without "{}".
    """
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"MODEL.VERTFOUND.TEXT.TEMPLATES {list(templates)} must be non-empty "
                         "and each must contain '{}' (the level name).")
    names = [expand_level_name(n) if expand else n for n in names]
    return [t.format(name) for name in names for t in templates]


class LevelTextClassifier(nn.Module):
    """Normalised text embeddings [K, D] of the level names.

    Args:
        encode_text: CLIP's ``encode_text`` (token ids [n, ctx] -> [n, D]); its module is not
            registered here (it belongs to the CLIP model).
        tokenizer: ``tokenizer(list_of_str)`` -> int64 [n, ctx].
        class_names: K level names in contiguous-id order.
        templates: prompt templates containing "{}".
        expand_names: expand "C1" style names (:func:`expand_level_name`).
        trainable: the text tower trains (embeddings recomputed in training forwards).
    """

    def __init__(self, encode_text: Callable[[Tensor], Tensor], tokenizer: Callable,
                 class_names: Sequence[str], templates: Sequence[str], expand_names: bool = True,
                 trainable: bool = False):
        super().__init__()
        self._encode_text = encode_text
        self.class_names = list(class_names)
        self.num_templates = len(templates)
        self.prompts = level_prompts(self.class_names, templates, expand_names)
        self.trainable = trainable
        self.register_buffer("tokens", tokenizer(self.prompts).long(), False)
        # a cache derived from the weights, not a buffer: a weight average (MODEL_EMA) must not
        # average it, and it is recomputed on another device or after a weight change
        self.class_embeddings: Optional[Tensor] = None
        self._stale = True

    def mark_stale(self) -> None:
        """Recompute the kept embeddings at the next use (after a weight load or a weight
        average update)."""
        self._stale = True

    def compute(self) -> Tensor:
        """Encode all prompts now: [K, D] unit rows."""
        features = F.normalize(self._encode_text(self.tokens).float(), dim=-1)
        features = features.view(len(self.class_names), self.num_templates, -1).mean(dim=1)
        return F.normalize(features, dim=-1)

    def forward(self) -> Tensor:
        """The class embeddings [K, D]: the kept buffer, or a fresh (differentiable) encoding
        in training when the text tower trains."""
        if self.trainable and self.training:
            self._stale = True  # the weights are changing: re-encode for inference
            return self.compute()
        if (self._stale or self.class_embeddings is None
                or self.class_embeddings.device != self.tokens.device):
            with torch.no_grad():
                self.class_embeddings = self.compute()
            self._stale = False
        return self.class_embeddings
