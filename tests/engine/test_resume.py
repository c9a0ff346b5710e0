"""Exact resume's pieces: RNG states through a weights_only checkpoint, preserved RNG blocks,
a loader that replays batches."""
import random

import numpy as np
import torch

from vertspine.engine.resume import ReplayableLoader, RNGStates, preserved_rng_states


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn()  # numpy caches a second gaussian: has_gauss = 1
    torch.save({"rng_states": RNGStates().state_dict()}, tmp_path / "c.pth")
    expected = _draws()
    states = RNGStates()
    assert not states.restore_loaded()
    states.load_state_dict(torch.load(tmp_path / "c.pth", weights_only=True)["rng_states"])
    assert states.restore_loaded()
    assert _draws() == expected


def test_preserved_block_leaves_the_generators_as_it_found_them():
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    with preserved_rng_states():
        _draws()
    after = _draws()
    torch.manual_seed(2), np.random.seed(2), random.seed(2)
    assert _draws() == after


def test_replayable_loader_skips_batches():
    loader = iter(ReplayableLoader(range(10)))
    loader.skip(3)
    assert [next(loader), next(loader)] == [3, 4]
