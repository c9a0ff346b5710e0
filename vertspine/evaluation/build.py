"""Choosing the evaluator of a dataset from its metadata, in one place.

``MetadataCatalog.get(name).evaluator_type`` names a builder registered with
:func:`register_evaluator`: a function ``(cfg, dataset_name, output_folder) -> DatasetEvaluator``.
Model families register their own evaluators (e.g. vertebra-level accuracy) under new names.
(fvcore's Registry keys entries by ``__name__``; evaluator types are data-facing names such as
"coco", so a keyed table is used here.)
"""
import logging
from typing import Callable, Dict

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator

from vertspine.utils.compiled_ops import has_compiled_ops

__all__ = ["DetectionEvaluator", "register_evaluator", "registered_evaluator_types",
           "build_evaluator", "score_threshold_setting"]

logger = logging.getLogger(__name__)

EvaluatorBuilder = Callable[[CfgNode, str, str], DatasetEvaluator]
_EVALUATOR_BUILDERS: Dict[str, EvaluatorBuilder] = {}


def register_evaluator(evaluator_type: str) -> Callable[[EvaluatorBuilder], EvaluatorBuilder]:
    """Decorator: register ``builder(cfg, dataset_name, output_folder)`` for ``evaluator_type``."""

    def decorator(builder: EvaluatorBuilder) -> EvaluatorBuilder:
        if evaluator_type in _EVALUATOR_BUILDERS:
            raise ValueError(f"An evaluator is already registered for '{evaluator_type}'.")
        _EVALUATOR_BUILDERS[evaluator_type] = builder
        return builder

    return decorator


def registered_evaluator_types() -> list:
    """Sorted names usable as a dataset's ``evaluator_type``."""
    return sorted(_EVALUATOR_BUILDERS)


# The config node holding SCORE_THRESH_TEST, by MODEL.META_ARCHITECTURE (default ROI_HEADS).
_SCORE_THRESHOLD_NODES = {"RetinaNet": "RETINANET", "SparseRCNN": "SPARSE_RCNN"}


def score_threshold_setting(cfg: CfgNode) -> str:
    """The config key and value of the score threshold below which the model's detections are
    dropped at test time, e.g. ``"MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.05"``."""
    node = _SCORE_THRESHOLD_NODES.get(cfg.MODEL.META_ARCHITECTURE, "ROI_HEADS")
    return f"MODEL.{node}.SCORE_THRESH_TEST {cfg.MODEL[node].SCORE_THRESH_TEST}"


class DetectionEvaluator(COCOEvaluator):
    """detectron2's COCOEvaluator that explains an AP of NaN from a model that detected nothing.

    Args:
        dataset_name, **kwargs: as COCOEvaluator.
        score_threshold: the threshold's setting, named in that explanation
            (:func:`score_threshold_setting`).
    """

    def __init__(self, dataset_name: str, *, score_threshold: str, **kwargs):
        super().__init__(dataset_name, **kwargs)
        self._score_threshold = score_threshold
        self._dataset = dataset_name

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        if coco_eval is None:
            logger.warning(
                "AP is nan on %s: the detector produced no detections above the score threshold "
                "(%s). A short run has not learnt to detect yet: train longer (SOLVER.MAX_ITER), "
                "or lower that threshold.", self._dataset, self._score_threshold)
        return super()._derive_coco_results(coco_eval, iou_type, class_names=class_names)


@register_evaluator("coco")
def build_coco_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str) -> COCOEvaluator:
    """COCO box (and mask, with MODEL.MASK_ON) AP; the C++ COCOeval only when compiled."""
    tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
    return DetectionEvaluator(
        dataset_name,
        score_threshold=score_threshold_setting(cfg),
        tasks=tasks,
        distributed=True,
        output_dir=output_folder,
        use_fast_impl=has_compiled_ops(),
    )


def build_evaluator(cfg: CfgNode, dataset_name: str, output_folder: str) -> DatasetEvaluator:
    """The evaluator registered under ``TEST.EVALUATOR_TYPE`` when set, else under the
    dataset's ``evaluator_type`` metadata.

    Raises:
        ValueError: the dataset has no ``evaluator_type``, or the name is not registered.
    """
    evaluator_type = cfg.TEST.EVALUATOR_TYPE or \
        MetadataCatalog.get(dataset_name).get("evaluator_type", None)
    asked_by = "TEST.EVALUATOR_TYPE is" if cfg.TEST.EVALUATOR_TYPE else \
        f"Dataset '{dataset_name}' asks for evaluator_type"
    if evaluator_type is None:
        raise ValueError(
            f"Dataset '{dataset_name}' has no 'evaluator_type' metadata; set it when registering "
            f"(one of: {', '.join(registered_evaluator_types())})."
        )
    if evaluator_type not in _EVALUATOR_BUILDERS:
        raise ValueError(
            f"{asked_by} '{evaluator_type}', which is not registered; known: "
            f"{', '.join(registered_evaluator_types())}."
        )
    return _EVALUATOR_BUILDERS[evaluator_type](cfg, dataset_name, output_folder)
