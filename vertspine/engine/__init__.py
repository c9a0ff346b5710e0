"""Training engine: launch (GPU/NCCL or CPU/gloo), Trainer, hooks, atomic checkpoints, weight EMA."""
from .checkpoint import AtomicDetectionCheckpointer, check_weights_file
from .ema import EMAUpdate, build_model_ema
from .hooks import ValidationLoss
from .launch import create_ddp_model, launch
from .optimizer import build_optimizer
from .trainer import Trainer

__all__ = [
    "AtomicDetectionCheckpointer", "EMAUpdate", "Trainer", "ValidationLoss",
    "build_model_ema", "build_optimizer", "check_weights_file", "create_ddp_model", "launch",
]
