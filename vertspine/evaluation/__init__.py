"""Evaluators of vertspine and the choice of one per dataset."""
from .build import build_evaluator, register_evaluator, registered_evaluator_types

__all__ = ["build_evaluator", "register_evaluator", "registered_evaluator_types"]
