"""Embedding distillation (DAFT step 1): the ``PromptSegDistiller`` meta-architecture.

A student image encoder (``MODEL.PROMPT_SEG.ENCODER``, e.g. EfficientViT-SAM-L0 from ``l0.pt``)
learns to reproduce a frozen teacher's image embeddings (``MODEL.PROMPT_SEG.DISTILL``, e.g. the
TinyViT of a LiteMedSAM-size model trained here):
``loss_distill = mean((student(x) - teacher(x))^2)`` over every element of the [N, 256, E, E]
embeddings. Both encoders see the same input, the mapper's ``image`` [3, S, S] (the shared
LiteMedSAM/DAFT preprocessing), so both must expect the same size S and pixel scaling.

The teacher is kept *outside* the module tree: it is not in ``state_dict()`` (so not in saved
checkpoints), not in ``parameters()`` (so not optimised, and not averaged by ``MODEL_EMA``,
whose copy of the model shares it), is always in eval mode with ``requires_grad`` False, and
moves with the model (``.to(device)``, ``.half()``).

Checkpoints hold the student only, as ``student.<the encoder's own state-dict keys>``; the
fine-tune config reads them with the encoder's weight key (for EfficientViT:
``MODEL.PROMPT_SEG.EFFICIENTVIT.WEIGHTS``, which strips ``student.``).

At inference the model returns, per input, ``{"embedding_mse": scalar tensor}``, the image's
MSE, which the "embedding_mse" evaluator averages over a dataset (``TEST.EVALUATOR_TYPE``).
"""
import logging
from typing import Dict, List, Mapping, Union

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from torch import Tensor, nn

from vertspine.utils.checkpoint_report import CheckpointReport
from vertspine.utils.state_dict import read_state_dict

from .registry import PROMPT_SEG_ENCODER_REGISTRY, PromptSegEncoder

__all__ = ["PromptSegDistiller", "build_teacher_encoder", "load_teacher_weights"]

logger = logging.getLogger(__name__)


class _OutsideModuleTree:
    """Holds a module without registering it; a deep copy (``AveragedModel``) shares it."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __deepcopy__(self, memo) -> "_OutsideModuleTree":
        return self


@META_ARCH_REGISTRY.register()
class PromptSegDistiller(nn.Module):
    """Trains ``student`` to output ``teacher``'s image embeddings (MSE); teacher frozen."""

    @configurable
    def __init__(self, *, student: PromptSegEncoder, teacher: PromptSegEncoder):
        """
        Args:
            student: the encoder trained, [N, 3, S, S] -> [N, 256, E, E].
            teacher: the frozen encoder it imitates, same input and output shapes.
        Raises:
            ValueError: the two differ in input size, pixel scaling or embedding size.
        """
        super().__init__()
        for field in ("input_size", "pixel_scaling", "embedding_size"):
            if getattr(student, field) != getattr(teacher, field):
                raise ValueError(
                    f"The student (MODEL.PROMPT_SEG.ENCODER) has {field} "
                    f"{getattr(student, field)!r} but the teacher (MODEL.PROMPT_SEG.DISTILL."
                    f"TEACHER_ENCODER) {getattr(teacher, field)!r}: both must see the same "
                    "images and give embeddings of one shape (e.g. both at 256 px, 64x64).")
        self.student = student.module
        self.input_size = student.input_size
        teacher.module.requires_grad_(False)
        self._teacher = _OutsideModuleTree(teacher.module.eval())

    @classmethod
    def from_config(cls, cfg) -> Dict:
        return {"student": PROMPT_SEG_ENCODER_REGISTRY.get(cfg.MODEL.PROMPT_SEG.ENCODER)(cfg),
                "teacher": build_teacher_encoder(cfg)}

    @property
    def teacher(self) -> nn.Module:
        """The frozen teacher encoder (eval mode, no gradients; not a submodule)."""
        return self._teacher.module

    @property
    def device(self) -> torch.device:
        return next(self.student.parameters()).device

    def _apply(self, fn, recurse: bool = True):
        """Moves and casts (``.to``, ``.cuda``, ``.half``) apply to the teacher too."""
        super()._apply(fn, recurse)
        self.teacher._apply(fn)
        return self

    def forward(self, batched_inputs: List[Mapping]
                ) -> Union[Dict[str, Tensor], List[Dict[str, Tensor]]]:
        """
        Args:
            batched_inputs: mapper dicts with ``image`` float [3, S, S] (preprocessed).
        Returns:
            Training: ``{"loss_distill": MSE over the batch}``. Inference: per input
            ``{"embedding_mse": MSE of that image}``.
        Raises:
            ValueError: an image is not [3, S, S].
        """
        images = torch.stack([x["image"] for x in batched_inputs]).to(self.device)
        if images.shape[1:] != (3, self.input_size, self.input_size):
            raise ValueError(f"PromptSegDistiller takes images [3, {self.input_size}, "
                             f"{self.input_size}] (INPUT.PROMPT_SEG.IMAGE_SIZE), got "
                             f"{list(images.shape[1:])}.")
        student = self.student(images)
        with torch.no_grad():
            teacher = self.teacher(images)
        if self.training:
            return {"loss_distill": F.mse_loss(student, teacher)}
        per_image = (student - teacher).square().flatten(1).mean(dim=1)
        return [{"embedding_mse": value} for value in per_image]


def build_teacher_encoder(cfg) -> PromptSegEncoder:
    """The teacher of ``MODEL.PROMPT_SEG.DISTILL``: built by its registry builder from a copy of
    ``cfg`` whose ``MODEL.PROMPT_SEG.ENCODER`` is ``TEACHER_ENCODER`` (under the seed
    ``TEACHER_SEED``; the global random state is left as it was), then given ``TEACHER_WEIGHTS``
    when set (:func:`load_teacher_weights`).

    Raises:
        ValueError: ``TEACHER_ENCODER`` is empty or not registered.
    """
    node = cfg.MODEL.PROMPT_SEG.DISTILL
    if node.TEACHER_ENCODER not in PROMPT_SEG_ENCODER_REGISTRY:
        raise ValueError(f"MODEL.PROMPT_SEG.DISTILL.TEACHER_ENCODER={node.TEACHER_ENCODER!r} is "
                         f"not a registered encoder; one of "
                         f"{sorted(name for name, _ in PROMPT_SEG_ENCODER_REGISTRY)}.")
    teacher_cfg = cfg.clone()
    teacher_cfg.defrost()
    teacher_cfg.MODEL.PROMPT_SEG.ENCODER = node.TEACHER_ENCODER
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(node.TEACHER_SEED)
        teacher = PROMPT_SEG_ENCODER_REGISTRY.get(node.TEACHER_ENCODER)(teacher_cfg)
    if node.TEACHER_WEIGHTS:
        logger.info("%s", load_teacher_weights(teacher.module, node.TEACHER_WEIGHTS))
    return teacher


def load_teacher_weights(teacher: nn.Module, path: str) -> CheckpointReport:
    """Load every weight of ``teacher`` from a checkpoint holding its state dict bare or under
    one prefix (``encoder.``, ``image_encoder.``, ...: the prefix under which every teacher key
    is found with its shape).

    Raises:
        ValueError: no prefix (or more than one) holds all the teacher's keys with their shapes;
            the message names the closest prefix and what it lacks.
        FileNotFoundError, CheckpointReadError: from :func:`read_state_dict`.
    """
    state = read_state_dict(path, missing_hint="Set MODEL.PROMPT_SEG.DISTILL.TEACHER_WEIGHTS to "
                            "the teacher's checkpoint (e.g. the model_final.pth of its training).")
    own = teacher.state_dict()
    first = next(iter(own))
    prefixes = sorted({key[:-len(first)] for key in state if key.endswith(first)})
    lacking = {prefix: [key for key, value in own.items()
                        if prefix + key not in state or state[prefix + key].shape != value.shape]
               for prefix in prefixes}
    complete = [prefix for prefix, keys in lacking.items() if not keys]
    if len(complete) != 1:
        closest = min(lacking, key=lambda p: len(lacking[p])) if lacking else None
        found = (f"closest prefix {closest!r} lacks or has other shapes for "
                 f"{lacking[closest][:5]}" if closest is not None
                 else f"no key ends with {first!r}")
        what = "several prefixes hold" if complete else "no prefix holds"
        raise ValueError(f"{path}: {what} every key of the teacher (MODEL.PROMPT_SEG.DISTILL."
                         f"TEACHER_ENCODER) with its shape ({complete or found}). Give a "
                         "checkpoint of that encoder.")
    prefix = complete[0]
    teacher.load_state_dict({key: state[prefix + key] for key in own})
    report = CheckpointReport(loaded=list(own), title=f"Teacher weights from {path} "
                                                      f"(prefix {prefix!r})")
    report.unexpected = [key for key in state if not key.startswith(prefix) or
                         key[len(prefix):] not in own]
    return report
