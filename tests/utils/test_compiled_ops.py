"""detectron2 without compiled ops: imports work, the ops that need _C fail with the fix."""
import pytest
import torch

import vertspine  # noqa: F401
from vertspine.utils.compiled_ops import CompiledOpsUnavailable, has_compiled_ops

pytestmark = pytest.mark.skipif(has_compiled_ops(), reason="detectron2 has its compiled ops")


def test_detectron2_modules_that_import_c_load_and_report_it():
    import detectron2.evaluation.fast_eval_api as fast_eval_api
    import detectron2.layers.deform_conv as deform_conv

    # both did `from detectron2 import _C` at import time and got the stand-in
    assert fast_eval_api._C is deform_conv._C
    with pytest.raises(CompiledOpsUnavailable, match="COCOevalAccumulate"):
        fast_eval_api._C.COCOevalAccumulate


def test_any_compiled_op_raises_with_instructions():
    from detectron2 import _C

    # detectron2 calls these for deformable convolution on CUDA tensors and for rotated IoU
    for name in ("deform_conv_forward", "box_iou_rotated"):
        with pytest.raises(CompiledOpsUnavailable, match=f"{name}.*pip install"):
            getattr(_C, name)


def test_rotated_iou_raises_with_instructions():
    from detectron2.structures import RotatedBoxes, pairwise_iou_rotated

    boxes = RotatedBoxes(torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0]]))
    with pytest.raises(CompiledOpsUnavailable, match="box_iou_rotated"):
        pairwise_iou_rotated(boxes, boxes)


def test_rotated_nms_raises_with_instructions():
    from detectron2.layers import nms_rotated

    boxes = torch.tensor([[5.0, 5.0, 4.0, 4.0, 0.0], [5.0, 5.0, 4.0, 4.0, 10.0]])
    with pytest.raises(CompiledOpsUnavailable, match="nms_rotated.*git\\+https"):
        nms_rotated(boxes, torch.tensor([0.9, 0.8]), 0.5)


def test_upright_ops_work_without_compiled_ops():
    from detectron2.layers import ROIAlign, batched_nms

    keep = batched_nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]]),
                       torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 0]), 0.5)
    assert keep.tolist() == [0, 2]
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    pooled = ROIAlign((1, 1), 1.0, 0, aligned=True)(features, torch.tensor([[0.0, 0, 0, 4, 4]]))
    assert pooled.item() == pytest.approx(features.mean().item())


def test_collect_env_reports_the_build_kind():
    from detectron2.utils.collect_env import collect_env_info as detectron2_env

    from vertspine.collect_env import collect_env_info

    table = collect_env_info()
    assert "detectron2 compiled ops (_C)  no (pure Python)" in table
    assert "without compiled ops" in detectron2_env()  # default_setup's report does not crash
