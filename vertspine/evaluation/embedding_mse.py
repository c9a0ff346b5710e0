"""Mean embedding MSE of a distillation model over a dataset: ``evaluator_type "embedding_mse"``.

A distiller (e.g. :class:`~vertspine.modeling.prompt_seg.distill.PromptSegDistiller`) returns
per input ``{"embedding_mse": scalar}``, the mean squared difference between the student's and
the teacher's embedding of that image. The evaluator averages it over images:
``{"embedding_mse": {"MSE": mean, "RMSE": sqrt(mean)}}`` (lower is better:
``TEST.BEST_CHECKPOINT_METRIC "embedding_mse/MSE"`` with ``TEST.BEST_CHECKPOINT_MODE "min"``).
Select it for a dataset registered with another evaluator with ``TEST.EVALUATOR_TYPE``.
"""
import math
from typing import Dict, List, Optional

from detectron2.evaluation import DatasetEvaluator

from .build import register_evaluator
from .gather import gather_on_main

__all__ = ["EmbeddingMSEEvaluator"]


class EmbeddingMSEEvaluator(DatasetEvaluator):
    """Average of the model's per-image ``embedding_mse`` (see the module docstring)."""

    def __init__(self, *, distributed: bool = True):
        """
        Args:
            distributed: gather the per-image values of every process.
        """
        self.distributed = distributed
        self._values: List[float] = []

    def reset(self) -> None:
        self._values = []

    def process(self, inputs: List[Dict], outputs: List[Dict]) -> None:
        """
        Args:
            inputs: the mapper's dicts (unused but for error messages).
            outputs: model outputs with ``embedding_mse`` (a scalar tensor or float).
        Raises:
            KeyError: an output without ``embedding_mse`` (the model is not a distiller).
        """
        for record, output in zip(inputs, outputs):
            if "embedding_mse" not in output:
                raise KeyError(f"The model's output for {record.get('file_name')!r} has no "
                               f"'embedding_mse' (keys {sorted(output)}): the embedding_mse "
                               "evaluator evaluates distillers (MODEL.META_ARCHITECTURE "
                               "PromptSegDistiller); unset TEST.EVALUATOR_TYPE for other models.")
            self._values.append(float(output["embedding_mse"]))

    def evaluate(self) -> Optional[Dict[str, Dict[str, float]]]:
        values = gather_on_main(self._values, self.distributed)
        if values is None:
            return None
        if not values:
            return {"embedding_mse": {}}
        mean = sum(values) / len(values)
        return {"embedding_mse": {"MSE": mean, "RMSE": math.sqrt(mean)}}


@register_evaluator("embedding_mse")
def build_embedding_mse_evaluator(cfg, dataset_name: str,
                                  output_folder: str) -> EmbeddingMSEEvaluator:
    """The "embedding_mse" evaluator (nothing is written to ``output_folder``)."""
    return EmbeddingMSEEvaluator()
