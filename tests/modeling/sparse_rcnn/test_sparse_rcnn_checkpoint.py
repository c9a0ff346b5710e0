"""load_sparse_rcnn_checkpoint: round trip, another class count, strict mode, key forms."""
import pytest
import torch

from test_sparse_rcnn_detector_e2e import one_thread  # noqa: F401  (autouse fixture)
from test_sparse_rcnn_detector_e2e import batch, tiny_model
from vertspine.modeling.sparse_rcnn import load_sparse_rcnn_checkpoint

CLASS_KEYS = {f"head.head_series.{i}.class_logits.{p}"
              for i in range(2) for p in ("weight", "bias")}


def predict(model):
    model.eval()
    with torch.no_grad():
        return [x["instances"] for x in model(batch())]


def test_saved_checkpoint_reloads_to_identical_outputs(tmp_path):
    source = tiny_model(seed=0)
    path = tmp_path / "model.pth"
    torch.save({"model": source.state_dict(), "iteration": 9}, path)
    target = tiny_model(seed=1)
    report = load_sparse_rcnn_checkpoint(target, str(path))
    assert report.complete and len(report.loaded) == len(source.state_dict())
    for a, b in zip(predict(source), predict(target)):
        assert torch.equal(a.pred_boxes.tensor, b.pred_boxes.tensor)
        assert torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)


@pytest.mark.parametrize("wrap", [lambda sd: sd, lambda sd: {"model": sd},
                                  lambda sd: {f"module.{k}": v for k, v in sd.items()}])
def test_bare_wrapped_and_ddp_state_dicts_load(wrap):
    state = tiny_model(seed=0).state_dict()
    target = tiny_model(seed=1)
    assert load_sparse_rcnn_checkpoint(target, wrap(state)).complete
    assert all(torch.equal(v, target.state_dict()[k]) for k, v in state.items())


def test_other_class_count_loads_all_but_the_class_logits():
    coco = tiny_model("MODEL.SPARSE_RCNN.NUM_CLASSES", "80", seed=0).state_dict()
    target = tiny_model(seed=1)  # 7 classes
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_sparse_rcnn_checkpoint(target, coco)
    assert set(report.skipped) == CLASS_KEYS
    assert not report.missing and not report.unexpected
    assert set(report.loaded) == set(coco) - CLASS_KEYS
    reason = report.skipped["head.head_series.0.class_logits.weight"]
    assert "checkpoint [80, 64], model [7, 64]" in reason and "class count" in reason
    assert "4 skipped" in str(report) and "head.head_series.1.class_logits.bias" in str(report)
    after = target.state_dict()
    for key in coco:
        expected = before[key] if key in CLASS_KEYS else coco[key]
        assert torch.equal(after[key], expected), key


def test_missing_and_unexpected_keys_are_reported():
    state = tiny_model(seed=0).state_dict()
    state["backbone.bottom_up.res4.6.conv1.weight"] = torch.zeros(1)  # e.g. R-101 into R-50
    del state["init_proposal_boxes.weight"]
    report = load_sparse_rcnn_checkpoint(tiny_model(seed=1), state)
    assert report.unexpected == ["backbone.bottom_up.res4.6.conv1.weight"]
    assert report.missing == ["init_proposal_boxes.weight"]
    assert not report.complete


def test_strict_raises_naming_the_key_and_shapes():
    coco = tiny_model("MODEL.SPARSE_RCNN.NUM_CLASSES", "80", seed=0).state_dict()
    target = tiny_model(seed=1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"head\.head_series\.0\.class_logits\.weight: "
                                         r"checkpoint \[80, 64\], model \[7, 64\]"):
        load_sparse_rcnn_checkpoint(target, coco, strict=True)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())  # untouched
