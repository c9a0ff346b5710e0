"""Exact resume: a run killed and resumed trains as the uninterrupted run does.

What a checkpoint does not hold by itself, and how it is restored:

- the data: where the training loader was. The loader is rebuilt from the config and the same
  SEED, so it gives the same batches as before; on resume the batches of the iterations already
  trained are drawn again and dropped (:class:`ReplayableLoader`). Drawing them again, rather
  than jumping the sampler, is what keeps DataLoader workers (seeded when the iterator is made)
  and aspect-ratio buckets in step.
- the random number generators of torch, numpy and python, saved with each checkpoint
  (:class:`RNGStates`) and set back once the batches are replayed.

Evaluation and validation-loss hooks run under :func:`preserved_rng_states`, so that the draws
they make (loader seeds, proposal sampling) do not change the training's random numbers.
Limits: the run needs a fixed SEED (SEED < 0 draws a new data order on every start), and in
runs of several processes only the data order is restored (each process's generators differ;
the checkpoint holds the main process's).
"""
import random
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, Optional

import numpy as np
import torch

__all__ = ["RNGStates", "ReplayableLoader", "preserved_rng_states"]


def _capture() -> Dict[str, Any]:
    """The RNG states of torch (CPU and CUDA), numpy and python, as tensors and numbers (so
    that ``torch.load(weights_only=True)`` reads them)."""
    _, keys, position, has_gauss, gauss = np.random.get_state()
    version, python_state, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": python_gauss},
    }


def _restore(state: Dict[str, Any]) -> None:
    """Set the generators to a state :func:`_capture` returned."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["gauss"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["state"]), python["gauss"]))


@contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Run the block without changing the torch, numpy and python random number generators."""
    saved = _capture()
    try:
        yield
    finally:
        _restore(saved)


class RNGStates:
    """Checkpointable of the random number generators of this process.

    ``state_dict`` captures them; ``load_state_dict`` keeps a loaded state until
    :meth:`restore_loaded` sets it, once the resumed run has replayed its data.
    """

    def __init__(self):
        self._loaded: Optional[Dict[str, Any]] = None

    def state_dict(self) -> Dict[str, Any]:
        return _capture()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._loaded = state

    def restore_loaded(self) -> bool:
        """Set the generators to the loaded state; False when no state was loaded (a checkpoint
        older than this class)."""
        if self._loaded is None:
            return False
        _restore(self._loaded)
        self._loaded = None
        return True


class ReplayableLoader:
    """A training loader whose iterator can drop batches: :meth:`skip` draws ``n`` batches and
    discards them. Iterating it makes the wrapped loader's iterator at once (when the trainer
    is built, as the bare loader's would be)."""

    def __init__(self, loader: Iterable):
        self.loader = loader
        self._iterator: Optional[Iterator] = None

    def __iter__(self) -> "ReplayableLoader":
        self._iterator = iter(self.loader)
        return self

    def __next__(self):
        return next(self._iterator)

    def skip(self, n: int) -> None:
        """Draw and drop the next ``n`` batches."""
        for _ in range(n):
            next(self)
