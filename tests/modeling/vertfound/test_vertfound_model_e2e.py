"""VertFound end to end on CPU: a training step, the inference output contract, edge cases."""
import json

import pytest
import torch
from detectron2.structures import Boxes, Instances

from vertspine.modeling.vertfound import VertFound
from vertfound_test_utils import synthetic_input, tiny_cfg, tiny_model


def test_training_step_gives_finite_weighted_losses_and_gradients():
    model = tiny_model().train()
    batch = [synthetic_input(3, seed=1), synthetic_input(12, seed=2, image_id=1)]
    losses = model(batch)
    assert set(losses) == {"loss_focal", "loss_ot", "loss_order"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    assert model.fusion.sam_proj.weight.grad.abs().sum() > 0
    # frozen encoders (instant config) get no gradient and stay in eval mode
    assert all(p.grad is None for p in model.sam.parameters())
    assert not model.sam.training and not model.clip.visual.training


def test_inference_output_contract_in_original_pixels():
    model = tiny_model().eval()
    x = synthetic_input(5, seed=3, size=(64, 40))
    x["height"], x["width"] = 128, 80  # the mapper halved the original image
    with torch.no_grad():
        (out,) = model([x])
    inst = out["instances"]
    assert inst.image_size == (128, 80)
    assert isinstance(inst.pred_boxes, Boxes)
    order = inst.gt_indices
    assert sorted(order.tolist()) == list(range(5)) and order.dtype == torch.int64
    torch.testing.assert_close(inst.pred_boxes.tensor, x["instances"].gt_boxes.tensor[order] * 2)
    assert inst.pred_classes.dtype == torch.int64
    assert inst.level_probs.shape == (5, 25)
    assert ((inst.level_probs > 0) & (inst.level_probs < 1)).all()  # sigmoid, not summing to 1
    chosen = inst.level_probs.gather(1, inst.pred_classes[:, None])[:, 0]
    torch.testing.assert_close(inst.scores, chosen)
    # Viterbi: levels strictly increase from the top box down
    assert (inst.pred_classes[1:] > inst.pred_classes[:-1]).all()


def test_argmax_decoding_when_viterbi_is_off():
    model = tiny_model(tiny_cfg("MODEL.VERTFOUND.DECODE.VITERBI", "False")).eval()
    with torch.no_grad():
        inst = model([synthetic_input(6, seed=4)])[0]["instances"]
    assert inst.pred_classes.tolist() == inst.level_probs.argmax(1).tolist()


def _mirrored(x):
    """The input mirrored left-right, its boxes with it (x -> W - x)."""
    width = x["image"].shape[-1]
    boxes = x["instances"].gt_boxes.tensor
    mirrored = Instances(x["instances"].image_size, **x["instances"].get_fields())
    mirrored.gt_boxes = Boxes(torch.stack([width - boxes[:, 2], boxes[:, 1],
                                           width - boxes[:, 0], boxes[:, 3]], dim=1))
    return dict(x, image=x["image"].flip(-1), instances=mirrored)


def test_test_flip_averages_the_logits_of_the_image_and_its_mirror():
    x = synthetic_input(5, seed=7, size=(96, 72))
    model = tiny_model(tiny_cfg("MODEL.VERTFOUND.DECODE.VITERBI", "False")).eval()
    with torch.no_grad():
        plain, mirror = (model([inp])[0]["instances"] for inp in (x, _mirrored(x)))
        model.test_flip = True
        both = model([x])[0]["instances"]
    # each box's probabilities, in gt order
    probs = [inst.level_probs[inst.gt_indices.argsort()] for inst in (plain, mirror, both)]
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # the mirror does change them
    expected = ((torch.logit(probs[0].double()) + torch.logit(probs[1].double())) / 2).sigmoid()
    torch.testing.assert_close(probs[2].double(), expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(both.pred_boxes.tensor, plain.pred_boxes.tensor)


def test_image_without_boxes():
    model = tiny_model()
    empty, full = synthetic_input(0, seed=5), synthetic_input(4, seed=6, image_id=1)
    model.train()
    losses = model([empty, full])
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        outs = model([empty, full])
    assert len(outs[0]["instances"]) == 0 and len(outs[1]["instances"]) == 4


def test_boxes_from_a_detections_json(tmp_path):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 7, "bbox": [10, 40, 30, 20], "score": 0.9, "category_id": 1},
        {"image_id": 7, "bbox": [10, 5, 30, 20], "score": 0.8, "category_id": 1},
        {"image_id": 7, "bbox": [0, 0, 5, 5], "score": 0.01, "category_id": 1},
    ]))
    cfg = tiny_cfg("MODEL.VERTFOUND.BOX_SOURCE", "detections",
                   "MODEL.VERTFOUND.DETECTIONS_JSON", str(path))
    model = tiny_model(cfg).eval()
    x = synthetic_input(2, seed=7, image_id=7, size=(50, 60))
    x["height"], x["width"] = 100, 120
    with torch.no_grad():
        inst = model([x])[0]["instances"]
    assert inst.gt_indices.tolist() == [-1, -1]  # the low-score box was dropped
    torch.testing.assert_close(inst.pred_boxes.tensor,
                               torch.tensor([[10.0, 5, 40, 25], [10, 40, 40, 60]]))


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        tiny_model(tiny_cfg("MODEL.VERTFOUND.NUM_CLASSES", "24"))
    with pytest.raises(ValueError, match="BOX_SOURCE"):
        tiny_model(tiny_cfg("MODEL.VERTFOUND.BOX_SOURCE", "rpn"))
    with pytest.raises(ValueError, match="DETECTIONS_JSON"):
        tiny_model(tiny_cfg("MODEL.VERTFOUND.BOX_SOURCE", "detections"))


def test_built_from_python_without_a_config():
    cfg = tiny_cfg()
    args = VertFound.from_config(cfg)
    args["class_names"] = ["C1", "C2", "C3"]
    model = VertFound(**args).eval()
    assert model.num_classes == 3
    with torch.no_grad():
        inst = model([synthetic_input(2, seed=8)])[0]["instances"]
    assert inst.level_probs.shape == (2, 3)
