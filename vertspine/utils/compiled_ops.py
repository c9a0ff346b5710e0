"""detectron2 without its compiled ops (``detectron2._C``), handled in this one module.

detectron2 installed from the PyPI 0.6 sources (see ``scripts/install.sh``) has no
``detectron2._C``. Four of its modules import it at import time (deformable conv, rotated
boxes, ROIAlignRotated, the C++ COCOeval), which would make ``import detectron2.layers`` fail
although nothing vertspine uses needs them: ResNet/FPN, RPN, ROI heads, ROIAlign and NMS come
from torchvision, and COCO evaluation falls back to pycocotools.

:func:`ensure_detectron2_importable` installs, only when the real extension is missing, a
stand-in ``detectron2._C`` module whose every attribute raises :class:`CompiledOpsUnavailable`
with instructions, and registers the rotated-box torch operators with the same error. It logs
the situation once. :func:`has_compiled_ops` tells callers (e.g. the COCO evaluator choice).
"""
import importlib
import logging
import sys
import types

__all__ = ["CompiledOpsUnavailable", "ensure_detectron2_importable", "has_compiled_ops"]

_HOW_TO_FIX = (
    "Install detectron2 with its compiled ops, on a machine that can reach GitHub: "
    "`pip uninstall -y detectron2 && pip install --no-build-isolation "
    "'git+https://github.com/facebookresearch/detectron2.git'` (then re-run `make install`)."
)
# torch operators that detectron2 0.6 calls through torch.ops.detectron2 (layers/nms.py etc.)
_TORCH_OPS = {
    "nms_rotated": "nms_rotated(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated": "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "roi_align_rotated_forward": (
        "roi_align_rotated_forward(Tensor input, Tensor rois, float spatial_scale, "
        "int pooled_height, int pooled_width, int sampling_ratio) -> Tensor"
    ),
}
_state = {"checked": False, "compiled": None, "library": None}
logger = logging.getLogger(__name__)


class CompiledOpsUnavailable(RuntimeError):
    """Raised when a feature needs detectron2's compiled ops and they are not installed."""


def _unavailable(feature: str) -> CompiledOpsUnavailable:
    return CompiledOpsUnavailable(
        f"'{feature}' needs detectron2's compiled ops (detectron2._C), and this detectron2 was "
        f"installed without them (PyPI 0.6 sources). Features that need them: deformable "
        f"convolution on GPU, rotated boxes / rotated NMS / ROIAlignRotated, the C++ COCOeval. "
        + _HOW_TO_FIX
    )


class _MissingCompiledOps(types.ModuleType):
    """Stand-in for ``detectron2._C``: importable, but any use raises with the fix."""

    # detectron2.utils.collect_env (run by default_setup) reads these three.
    @staticmethod
    def get_compiler_version():
        return "none (detectron2 installed without compiled ops)"

    @staticmethod
    def get_cuda_version():
        return "none (detectron2 installed without compiled ops)"

    @staticmethod
    def has_cuda():
        return False

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unavailable(f"detectron2._C.{name}")


def _register_failing_torch_ops():
    """Define ``torch.ops.detectron2.*`` (rotated ops) so that calling one raises the fix."""
    import torch

    try:
        library = torch.library.Library("detectron2", "DEF")
    except RuntimeError:  # the namespace exists already: the real ops are registered
        return None
    for name, schema in _TORCH_OPS.items():
        library.define(schema)

        def _raise(*args, _name=name, **kwargs):
            raise _unavailable(f"torch.ops.detectron2.{_name}")

        library.impl(name, _raise, "CompositeExplicitAutograd")
    return library


def ensure_detectron2_importable() -> bool:
    """Make ``import detectron2.layers`` work whether or not ``detectron2._C`` was compiled.

    Returns:
        True when the real compiled ops are present, False when the stand-in was installed.
    """
    if _state["checked"]:
        return _state["compiled"]
    import detectron2

    try:
        importlib.import_module("detectron2._C")
        compiled = True
    except ImportError:
        compiled = False
        stand_in = _MissingCompiledOps("detectron2._C", "vertspine stand-in: no compiled ops")
        sys.modules["detectron2._C"] = stand_in
        detectron2._C = stand_in
        _state["library"] = _register_failing_torch_ops()
        logger.warning(
            "detectron2 %s has no compiled ops (detectron2._C): using pycocotools for COCO "
            "evaluation; deformable conv and rotated-box ops will raise. %s",
            detectron2.__version__,
            _HOW_TO_FIX,
        )
    _state.update(checked=True, compiled=compiled)
    return compiled


def has_compiled_ops() -> bool:
    """True when detectron2's C++/CUDA extension is installed."""
    return ensure_detectron2_importable()
