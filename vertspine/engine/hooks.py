"""Training hooks vertspine adds to detectron2's: the validation loss."""
import itertools
import logging
from collections import defaultdict
from contextlib import contextmanager
from typing import Dict, Iterable, Iterator

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

from .resume import preserved_rng_states

__all__ = ["ValidationLoss", "norm_layers_frozen"]

logger = logging.getLogger(__name__)


@contextmanager
def norm_layers_frozen(model: torch.nn.Module) -> Iterator[None]:
    """Put BatchNorm layers in eval mode (their running statistics untouched) for the block."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    was_training = [m.training for m in norms]
    for module in norms:
        module.eval()
    try:
        yield
    finally:
        for module, training in zip(norms, was_training):
            module.train(training)


class ValidationLoss(HookBase):
    """Every ``period`` iterations, average the training losses of the model over the first
    ``num_batches`` batches of a validation loader (no gradients, BatchNorm statistics frozen,
    the same batches every time) and store them as ``val_<loss name>`` and ``val_total_loss``.

    The loader must give ground truth (a training-style mapper without random augmentation).
    The measurement leaves the random number generators as it found them (the training's
    draws, e.g. proposal sampling, are those of a run without it).
    In distributed runs each process measures its shard and the means are averaged.
    """

    def __init__(self, period: int, data_loader: Iterable, num_batches: int):
        if period <= 0 or num_batches <= 0:
            raise ValueError(
                f"ValidationLoss needs period > 0 and num_batches > 0 "
                f"(TEST.VAL_LOSS_PERIOD={period}, TEST.VAL_LOSS_NUM_BATCHES={num_batches})."
            )
        self._period = period
        self._data_loader = data_loader
        self._num_batches = num_batches

    def _mean_losses(self) -> Dict[str, float]:
        model = self.trainer.model
        model = getattr(model, "module", model)  # no DDP synchronisation for a no-grad pass
        sums, count = defaultdict(float), 0
        with torch.no_grad(), norm_layers_frozen(model), preserved_rng_states():
            for batch in itertools.islice(self._data_loader, self._num_batches):
                for name, value in model(batch).items():
                    sums[name] += float(value)
                count += 1
        per_rank = [(s, n) for s, n in comm.all_gather((dict(sums), count)) if n > 0]
        total = sum(n for _, n in per_rank)
        names = per_rank[0][0].keys() if per_rank else ()
        return {name: sum(s[name] for s, _ in per_rank) / total for name in names}

    def after_step(self):
        next_iter = self.trainer.iter + 1
        if next_iter % self._period != 0 and next_iter != self.trainer.max_iter:
            return
        losses = self._mean_losses()
        if not losses:
            logger.warning("Validation loss: the validation loader gave no batch.")
            return
        scalars = {f"val_{name}": value for name, value in losses.items()}
        scalars["val_total_loss"] = sum(losses.values())
        if comm.is_main_process():
            self.trainer.storage.put_scalars(**scalars, smoothing_hint=False)
