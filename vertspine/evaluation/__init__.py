"""Evaluators of vertspine and the choice of one per dataset."""
from .build import build_evaluator, register_evaluator, registered_evaluator_types
from . import classification  # noqa: F401  (registers the "classification" evaluator)
from . import embedding_mse  # noqa: F401  (registers the "embedding_mse" evaluator)
from . import prompt_seg  # noqa: F401  (registers the "prompt_seg" evaluator)
from . import sem_seg_dice  # noqa: F401  (registers the "sem_seg_dice" evaluator)
from . import vertebra_level  # noqa: F401  (registers the "vertebra_level" evaluator)
from . import vessel  # noqa: F401  (registers the "vessel" evaluator)
from . import vindr  # noqa: F401  (registers the "vindr" evaluator)

__all__ = ["build_evaluator", "register_evaluator", "registered_evaluator_types"]
