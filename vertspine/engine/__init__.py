"""Training engine: launch (GPU/NCCL or CPU/gloo), Trainer, hooks, atomic checkpoints, weight EMA."""
from .checkpoint import (
    AtomicDetectionCheckpointer,
    NonFiniteWeightsError,
    check_weights_file,
    load_evaluation_weights,
)
from .ema import EMAUpdate, build_model_ema
from .hooks import ValidationLoss
from .launch import create_ddp_model, launch
from .optimizer import build_optimizer
from .trainer import Trainer

__all__ = [
    "AtomicDetectionCheckpointer", "EMAUpdate", "NonFiniteWeightsError", "Trainer", "ValidationLoss",
    "build_model_ema", "build_optimizer", "check_weights_file", "create_ddp_model", "launch",
    "load_evaluation_weights",
]
