"""The shared classifier: specs build, training is reproducible, also when run on threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from ganaug.classifier import ArchSpec, ConvBlockSpec, TrainConfig, build_classifier, train_classifier
from ganaug.errors import ConfigError


def _data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, generator=generator) * 0.3 + y.view(-1, 1, 1, 1).float() - 1
    return x, y


def _train(seed: int) -> torch.Tensor:
    x, y = _data()
    spec = ArchSpec(blocks=(ConvBlockSpec(channels=8),), head_width=16, dropout=0.5)
    result = train_classifier(spec, (x, y), (x[:12], y[:12]), 3, TrainConfig(steps=30, batch_size=16), seed=seed)
    return torch.cat([p.detach().flatten() for p in result.model.parameters()])


def test_same_seed_same_weights_sequential_and_on_threads() -> None:
    sequential = [_train(seed) for seed in (0, 1, 2, 3)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(_train, (0, 1, 2, 3)))
    for a, b in zip(sequential, threaded, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(sequential[0], sequential[1])


def test_dropout_is_active_in_training_only() -> None:
    model = build_classifier(ArchSpec(dropout=0.5), 1, 8, 8, 3)
    model.dropout.generator = torch.Generator().manual_seed(0)
    x = torch.ones(4, 8)
    model.dropout.train()
    dropped = model.dropout(x)
    assert set(dropped.unique().tolist()) == {0.0, 2.0}
    model.dropout.eval()
    assert torch.equal(model.dropout(x), x)


def test_too_many_pools_for_the_image_is_refused() -> None:
    spec = ArchSpec(blocks=tuple(ConvBlockSpec(channels=8) for _ in range(4)))
    with pytest.raises(ConfigError, match="pools 4 times but 8x8 images allow at most 3"):
        build_classifier(spec, 1, 8, 8, 3)
    assert build_classifier(spec, 1, 16, 16, 3)(torch.zeros(2, 1, 16, 16)).shape == (2, 3)
