"""PromptSegDistiller: the loss, training, the frozen teacher kept out of EMA and checkpoints."""
import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from detectron2.modeling import build_model

from efficientvit_fixtures import prompt_seg_cfg, single_torch_thread
from vertspine.engine import Trainer
from vertspine.engine.checkpoint import AtomicDetectionCheckpointer
from vertspine.engine.ema import build_model_ema
from vertspine.evaluation import build_evaluator
from vertspine.evaluation.embedding_mse import EmbeddingMSEEvaluator
from vertspine.modeling.prompt_seg import PromptSegDistiller, PromptSegEncoder
from vertspine.modeling.prompt_seg.distill import load_teacher_weights
from vertspine.modeling.prompt_seg.efficientvit_sam import (
    EFFICIENTVIT_SAM_SPECS,
    EfficientViTSamEncoder,
)
from vertspine.modeling.prompt_seg.efficientvit_weights import load_efficientvit_sam_weights

SIZE, EMBEDDING = 32, 16  # a 16x16 embedding: a fast neck


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_torch_thread():
        yield


def _encoder(seed: int) -> PromptSegEncoder:
    torch.manual_seed(seed)
    return PromptSegEncoder(EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS["tiny"], EMBEDDING),
                            SIZE, EMBEDDING, "minmax")


def _distiller() -> PromptSegDistiller:
    return PromptSegDistiller(student=_encoder(0), teacher=_encoder(1))


def _inputs(n: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(3, SIZE, SIZE, generator=g), "file_name": f"img{i}.npz"}
            for i in range(n)]


def test_loss_is_the_mse_of_the_embeddings_and_falls_with_training():
    model = _distiller().train()
    teacher_before = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    inputs = _inputs()
    images = torch.stack([x["image"] for x in inputs])
    loss = model(inputs)["loss_distill"].detach()
    with torch.no_grad():
        direct = F.mse_loss(model.student(images), model.teacher(images))
    assert float(loss) == pytest.approx(float(direct), rel=1e-5) and float(loss) > 0.1
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = model(inputs)["loss_distill"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses
    # The teacher: no gradients, not optimised, always in eval mode, unchanged.
    assert not model.teacher.training
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    teacher_ids = {id(p) for p in model.teacher.parameters()}
    assert not teacher_ids & {id(p) for p in model.parameters()}
    for key, value in model.teacher.state_dict().items():
        torch.testing.assert_close(value, teacher_before[key], rtol=0, atol=0)


def test_teacher_is_neither_in_the_ema_nor_in_the_checkpoint(tmp_path):
    model = _distiller()
    cfg = prompt_seg_cfg()
    cfg.MODEL_EMA.ENABLED = True
    ema = build_model_ema(cfg, model)
    student_keys = list(model.student.state_dict())
    assert list(model.state_dict()) == [f"student.{k}" for k in student_keys]
    assert sorted(ema.state_dict()) == sorted(["n_averaged", *(f"module.student.{k}"
                                                               for k in student_keys)])
    assert ema.module.teacher is model.teacher  # shared, not copied
    ema.update_parameters(model)
    AtomicDetectionCheckpointer(model, str(tmp_path), model_ema=ema).save("model_final")
    saved = torch.load(tmp_path / "model_final.pth", weights_only=False)
    assert list(saved["model"]) == [f"student.{k}" for k in student_keys]
    assert all(k.startswith(("module.student.", "n_averaged")) for k in saved["model_ema"])
    # The student's checkpoint initialises the encoder of the fine-tune config.
    encoder = EfficientViTSamEncoder(EFFICIENTVIT_SAM_SPECS["tiny"], EMBEDDING)
    assert load_efficientvit_sam_weights(encoder, str(tmp_path / "model_final.pth")).report.complete
    for key, value in model.student.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[key], value, rtol=0, atol=0)


def test_teacher_moves_and_casts_with_the_model():
    model = _distiller().to(torch.float64)
    assert next(model.teacher.parameters()).dtype == torch.float64
    inputs = [{"image": x["image"].double()} for x in _inputs(2)]
    assert model.train()(inputs)["loss_distill"].dtype == torch.float64
    assert not model.teacher.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_teacher_follows_the_model_to_cuda():
    model = _distiller().to("cuda")
    assert next(model.teacher.parameters()).is_cuda
    assert model.eval()(_inputs(1))[0]["embedding_mse"].is_cuda


def test_built_from_config_with_teacher_weights_found_under_a_prefix(tmp_path):
    teacher = _encoder(7).module
    path = str(tmp_path / "teacher_run.pth")  # a segmentor's checkpoint: encoder + decoder
    torch.save({"model": {**{f"encoder.{k}": v for k, v in teacher.state_dict().items()},
                          "mask_decoder.w": torch.zeros(2)}, "iteration": 9}, path)
    cfg = prompt_seg_cfg(SIZE)
    cfg.MODEL.META_ARCHITECTURE = "PromptSegDistiller"
    cfg.MODEL.PROMPT_SEG.EFFICIENTVIT.EMBEDDING_SIZE = EMBEDDING
    cfg.MODEL.PROMPT_SEG.DISTILL.TEACHER_ENCODER = "efficientvit_sam_tiny"
    cfg.MODEL.PROMPT_SEG.DISTILL.TEACHER_WEIGHTS = path
    model = build_model(cfg)
    for key, value in teacher.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.equal(model.student.state_dict()["neck.proj.weight"],
                           teacher.state_dict()["neck.proj.weight"])
    report = load_teacher_weights(_encoder(0).module, path)
    assert report.unexpected == ["mask_decoder.w"] and report.title.endswith("(prefix 'encoder.')")
    torch.save({"encoder.neck.proj.bias": torch.zeros(256)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no prefix holds every key of the teacher"):
        load_teacher_weights(teacher, str(tmp_path / "bad.pth"))
    cfg.MODEL.PROMPT_SEG.DISTILL.TEACHER_ENCODER = "no_such_encoder"
    with pytest.raises(ValueError, match="TEACHER_ENCODER='no_such_encoder' is not a registered"):
        build_model(cfg)


def test_mismatched_student_and_teacher_are_refused():
    teacher = _encoder(1)._replace(input_size=64)
    with pytest.raises(ValueError, match="input_size 32 but the teacher .* 64"):
        PromptSegDistiller(student=_encoder(0), teacher=teacher)


def test_evaluation_averages_the_per_image_mse():
    model = _distiller().eval()
    inputs = _inputs(3, seed=4)
    with torch.no_grad():
        outputs = model(inputs)
        images = torch.stack([x["image"] for x in inputs])
        direct = (model.student(images) - model.teacher(images)).square().mean(dim=(1, 2, 3))
    cfg = prompt_seg_cfg()
    cfg.TEST.EVALUATOR_TYPE = "embedding_mse"
    evaluator = build_evaluator(cfg, "any_dataset", "")
    assert isinstance(evaluator, EmbeddingMSEEvaluator)
    evaluator.distributed = False
    evaluator.reset()
    evaluator.process(inputs[:2], outputs[:2])
    evaluator.process(inputs[2:], outputs[2:])
    result = evaluator.evaluate()["embedding_mse"]
    assert result["MSE"] == pytest.approx(float(direct.mean()), rel=1e-5)
    assert result["RMSE"] == pytest.approx(float(direct.mean()) ** 0.5, rel=1e-5)
    with pytest.raises(KeyError, match="has no 'embedding_mse'"):
        evaluator.process(inputs[:1], [{"prompt_seg": {}}])
    cfg.TEST.EVALUATOR_TYPE = "embedding_mse_typo"
    with pytest.raises(ValueError, match="TEST.EVALUATOR_TYPE is 'embedding_mse_typo', which is "
                                         "not registered; known: .*embedding_mse"):
        build_evaluator(cfg, "any_dataset", "")


class _FeedTrainer(Trainer):
    """The vertspine Trainer fed mapper-format inputs directly (no dataset or mapper needed)."""

    @classmethod
    def build_train_loader(cls, cfg):
        return itertools.cycle([_inputs(2, seed=0), _inputs(2, seed=1)])

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return [_inputs(1, seed=10 + i) for i in range(3)]


def test_trainer_trains_with_ema_and_evaluates_embedding_mse(tmp_path):
    cfg = prompt_seg_cfg(SIZE)
    cfg.merge_from_list([
        "MODEL.META_ARCHITECTURE", "PromptSegDistiller",
        "MODEL.PROMPT_SEG.EFFICIENTVIT.EMBEDDING_SIZE", EMBEDDING,
        "MODEL.PROMPT_SEG.DISTILL.TEACHER_ENCODER", "efficientvit_sam_tiny",
        "MODEL_EMA.ENABLED", True, "MODEL_EMA.DECAY", 0.5,
        "SOLVER.OPTIMIZER", "ADAMW", "SOLVER.IMS_PER_BATCH", 2, "SOLVER.BASE_LR", 1e-3,
        "SOLVER.MAX_ITER", 2, "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", (),
        "SOLVER.CHECKPOINT_PERIOD", 100, "DATASETS.TEST", ("distill_val",),
        "TEST.EVALUATOR_TYPE", "embedding_mse", "TEST.EVAL_PERIOD", 0, "VERTSPINE.LOG_PERIOD", 1,
        "OUTPUT_DIR", str(tmp_path)])
    trainer = _FeedTrainer(cfg)
    trainer.train()
    with open(tmp_path / "inference" / "evaluation_results.json") as f:
        mse = json.load(f)["results"]["embedding_mse"]["MSE"]  # one dataset: unwrapped
    averaged = trainer.model_ema.module.eval()  # the evaluations use the weight average
    with torch.no_grad():
        direct = [float(averaged(batch)[0]["embedding_mse"]) for batch in
                  _FeedTrainer.build_test_loader(cfg, "distill_val")]
    assert mse == pytest.approx(sum(direct) / 3, rel=1e-5)
    saved = torch.load(tmp_path / "model_final.pth", weights_only=False)
    assert all(k.startswith("student.") for k in saved["model"])
    assert all(k.startswith(("module.student.", "n_averaged")) for k in saved["model_ema"])
    with open(tmp_path / "metrics.json") as f:
        logged = [json.loads(line) for line in f if line.strip()]
    assert [m["iteration"] for m in logged if "total_loss" in m] == [0, 1]  # = loss_distill
    assert [m["embedding_mse/MSE"] for m in logged if "embedding_mse/MSE" in m] == [mse]
