"""The CPU-sized 2D chain of configs (teacher -> distillation -> fine-tuning) hands each step's
checkpoint to the next: the teacher's TinyViT reaches the distiller's frozen teacher, the
distilled student reaches the fine-tuned segmentor's encoder, and the teacher's prompt encoder
and mask decoder reach the segmentor through MODEL.WEIGHTS without touching that encoder."""
import os

import torch
from detectron2.modeling import build_model

from conftest import REPO_ROOT
from efficientvit_fixtures import single_torch_thread
from vertspine.config import get_vertspine_cfg
from vertspine.engine.checkpoint import AtomicDetectionCheckpointer

CONFIGS = os.path.join(REPO_ROOT, "configs", "prompt_seg")


def _cfg(name: str, **overrides):
    cfg = get_vertspine_cfg()
    cfg.merge_from_file(os.path.join(CONFIGS, name))
    cfg.merge_from_list([item for pair in overrides.items() for item in pair])
    return cfg


def _assert_same(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=0, atol=0, msg=key)


def test_each_step_reads_the_previous_steps_checkpoint(tmp_path):
    teacher_path, student_path = str(tmp_path / "teacher.pth"), str(tmp_path / "student.pth")
    with single_torch_thread():
        torch.manual_seed(0)
        teacher = build_model(_cfg("tinyvit_small_128_phantom_2d.yaml"))
        torch.save({"model": teacher.state_dict(), "iteration": 1199}, teacher_path)

        torch.manual_seed(1)
        distiller = build_model(_cfg(
            "distill_efficientvit_l0_128_phantom_2d.yaml",
            **{"MODEL.PROMPT_SEG.DISTILL.TEACHER_WEIGHTS": teacher_path}))
        _assert_same(distiller.teacher.state_dict(), teacher.image_encoder.state_dict())
        with torch.no_grad():
            image = torch.rand(1, 3, 128, 128)
            assert distiller.student(image).shape == distiller.teacher(image).shape \
                == (1, 256, 32, 32)
        torch.save({"model": distiller.state_dict(), "iteration": 599}, student_path)

        torch.manual_seed(2)
        cfg = _cfg("efficientvit_l0_128_phantom_2d.yaml",
                   **{"MODEL.PROMPT_SEG.EFFICIENTVIT.WEIGHTS": student_path,
                      "MODEL.WEIGHTS": teacher_path})
        segmentor = build_model(cfg)
        AtomicDetectionCheckpointer(segmentor).load(cfg.MODEL.WEIGHTS, checkpointables=[])
    _assert_same(segmentor.image_encoder.state_dict(),
                 distiller.student.state_dict())
    for part in ("prompt_encoder", "mask_decoder"):
        _assert_same(getattr(segmentor, part).state_dict(), getattr(teacher, part).state_dict())
