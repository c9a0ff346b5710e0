"""scripts/teacher_embedding_spread.py: the variance over images of an encoder's embeddings,
equal to NumPy's on the same embeddings, whatever the batching."""
import numpy as np
import pytest
import torch

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("scripts/teacher_embedding_spread.py", "teacher_embedding_spread")


def test_spread_is_the_mean_over_elements_of_the_variance_over_images(script):
    torch.manual_seed(0)
    encoder = torch.nn.Conv2d(3, 4, kernel_size=2, stride=2)  # [N, 3, 8, 8] -> [N, 4, 4, 4]
    images = [torch.rand(3, 8, 8) for _ in range(5)]
    loader = [[{"image": x} for x in images[:2]], [{"image": x} for x in images[2:]]]
    spread, shape = script.embedding_spread(encoder, loader, torch.device("cpu"))
    with torch.no_grad():
        reference = encoder(torch.stack(images)).numpy()
    assert shape == [5, 4, 4, 4]
    assert spread == pytest.approx(float(np.var(reference, axis=0).mean()), rel=1e-5)
    assert spread > 0
