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


def test_step_budget_is_honoured_and_val_is_scored_on_schedule() -> None:
    x, y = _data()
    seen: list[int] = []
    result = train_classifier(ArchSpec(blocks=(ConvBlockSpec(channels=8),), head_width=16), (x, y), (x[:12], y[:12]), 3,
                              TrainConfig(steps=23, eval_every=5, batch_size=16), on_eval=lambda step, acc: seen.append(step))
    assert result.steps_run == 23 and seen == [5, 10, 15, 20, 23]
    assert [h["step"] for h in result.history] == seen
    assert result.history[0]["lr"] > result.history[-1]["lr"]  # the one-cycle schedule has decayed by the end


def test_best_val_checkpoint_is_restored_after_training_degrades() -> None:
    x, y = _data()
    calls = [0]

    def sabotage(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        calls[0] += 1  # after 30 steps the network only ever sees noise, and forgets
        return images if calls[0] <= 30 else torch.randn(images.shape, generator=generator)

    result = train_classifier(ArchSpec(blocks=(ConvBlockSpec(channels=8),), head_width=16), (x, y), (x, y), 3,
                              TrainConfig(steps=150, eval_every=10, batch_size=16, lr=5e-2, warmup=0.0,
                                          precision="float32"), augment=sabotage)
    from ganaug.classifier.train import accuracy_of

    top = max(h["val_accuracy"] for h in result.history)
    assert result.best_step == [h["step"] for h in result.history if h["val_accuracy"] == top][-1]  # ties: the later
    assert result.best_val_accuracy == top and result.history[-1]["val_accuracy"] < top
    assert accuracy_of(result.model, (x, y)) == pytest.approx(result.best_val_accuracy)


def test_patience_stops_after_evaluations_without_improvement() -> None:
    x, y = _data()
    result = train_classifier(ArchSpec(blocks=(ConvBlockSpec(channels=8),), head_width=16), (x, y), (x, y), 3,
                              TrainConfig(steps=400, eval_every=10, batch_size=16, patience=2))
    assert result.steps_run < 400 and result.steps_run - result.best_step == 20


def test_default_budget_grows_with_the_data_within_bounds() -> None:
    from ganaug.classifier.train import auto_steps

    assert [auto_steps(n) for n in (50, 1000, 4000, 60_000)] == [1000, 2000, 8000, 20_000]
    assert TrainConfig(steps=7).steps_for(10_000) == 7


@pytest.mark.parametrize("bad", [{"steps": 0}, {"eval_every": 0}, {"precision": "half"}, {"batch_size": 1}])
def test_bad_training_options_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)


def test_precision_float32_and_bfloat16_are_honoured() -> None:
    from ganaug.classifier.train import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype("float32", cpu) is None and autocast_dtype("bfloat16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)


def test_flatten_head_sees_the_last_map_and_global_average_does_not() -> None:
    flat = build_classifier(ArchSpec(), 1, 28, 28, 10)
    pooled = build_classifier(ArchSpec(head_input="global_avg"), 1, 28, 28, 10)
    assert flat.features[-2].in_features == 64 * 7 * 7 and pooled.features[-2].in_features == 64
    wide = build_classifier(ArchSpec(blocks=(ConvBlockSpec(channels=8, pool="none"),)), 3, 64, 64, 10)
    assert wide(torch.zeros(2, 3, 64, 64)).shape == (2, 10) and wide.features[-2].in_features == 8 * 8 * 8


def test_random_affine_matches_scipy_ndimage_with_the_same_parameters() -> None:
    import math

    import numpy as np
    from scipy import ndimage

    from ganaug.classifier.augment import random_affine

    images = torch.rand(4, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    out = random_affine(20.0, 0.2, 0.1)(images, torch.Generator().manual_seed(1))
    draws = torch.rand(4, 4, generator=torch.Generator().manual_seed(1)).T * 2 - 1  # per image: angle, zoom, x, y
    centre = (9 - 1) / 2
    for image, (u_angle, u_zoom, u_x, u_y), result in zip(images, draws.tolist(), out):
        angle, zoom = u_angle * math.radians(20.0), 1 + u_zoom * 0.2
        cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
        matrix = np.array([[cos, sin], [-sin, cos]])  # (row, col) = (y, x) order
        shift = np.array([u_y, u_x]) * 0.2 * 9 / 2  # grid units (2 per side) -> pixels
        offset = centre - matrix @ np.array([centre, centre]) + shift
        expected = ndimage.affine_transform(image[0].double().numpy(), matrix, offset, order=1, mode="nearest")
        assert np.allclose(result[0].numpy(), expected, atol=1e-5)
