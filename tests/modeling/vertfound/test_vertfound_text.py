"""Level-name text embeddings: prompts, kept once when the text tower is frozen."""
import pytest
import torch
import torch.nn.functional as F

from vertspine.modeling.vertfound.text import (
    LevelTextClassifier,
    expand_level_name,
    level_prompts,
)
from vertfound_test_utils import synthetic_input, tiny_model


def test_names_and_prompts():
    assert expand_level_name("C1") == "cervical vertebra C1"
    assert expand_level_name("T12") == "thoracic vertebra T12"
    assert expand_level_name("L6") == "lumbar vertebra L6"
    assert expand_level_name("sacrum") == "sacrum"
    prompts = level_prompts(["C1", "T2"], ["a {}.", "{}!"], expand=True)
    assert prompts == ["a cervical vertebra C1.", "cervical vertebra C1!",
                       "a thoracic vertebra T2.", "thoracic vertebra T2!"]
    with pytest.raises(ValueError, match="TEMPLATES"):
        level_prompts(["C1"], ["no slot"], expand=False)


class _CountingEncoder:
    def __init__(self):
        self.calls = 0
        self.weight = torch.nn.Parameter(torch.randn(100, 6))

    def __call__(self, tokens):
        self.calls += 1
        return self.weight[tokens % 100].sum(dim=1)


def _tokenizer(prompts):
    return torch.tensor([[len(p), sum(map(ord, p)) % 97, 3] for p in prompts])


def test_classifier_is_the_normalised_template_mean():
    encoder = _CountingEncoder()
    classifier = LevelTextClassifier(encoder, _tokenizer, ["C1", "C2"], ["a {}", "{} b"], False)
    raw = F.normalize(encoder(_tokenizer(classifier.prompts)), dim=-1).view(2, 2, -1).mean(1)
    torch.testing.assert_close(classifier(), F.normalize(raw, dim=-1))


def test_frozen_text_tower_is_encoded_once_across_forwards():
    model = tiny_model()
    calls = []
    original = model.text._encode_text
    model.text._encode_text = lambda tokens: calls.append(len(tokens)) or original(tokens)
    batch = [synthetic_input(3, seed=1), synthetic_input(4, seed=2, image_id=1)]
    model.train()
    model(batch)
    model(batch)
    model.eval()
    with torch.no_grad():
        model(batch)
    assert calls == [25]  # one encoding of the 25 prompts, for training and inference
    model.load_state_dict(model.state_dict())  # new weights -> encode again, once
    with torch.no_grad():
        model(batch)
        model(batch)
    assert calls == [25, 25]


def test_trainable_text_tower_is_encoded_each_training_forward_with_gradient():
    encoder = _CountingEncoder()
    classifier = LevelTextClassifier(encoder, _tokenizer, ["C1", "C2"], ["{}"], trainable=True)
    classifier.train()
    classifier().sum().backward()
    classifier()
    assert encoder.calls == 2 and encoder.weight.grad is not None
    classifier.eval()
    classifier()
    classifier()
    assert encoder.calls == 3
