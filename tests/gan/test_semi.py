"""The semi-supervised GAN: its losses by hand, determinism, and that learning from the pool beats labels alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ganaug.classifier import ArchSpec, TrainConfig, predict_logits, train_classifier
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import DataError
from ganaug.gan.semi import (
    SemiSupervisedConfig,
    discriminator_loss,
    feature_matching_loss,
    train_semi_supervised,
)


def test_discriminator_loss_matches_hand_computation():
    labelled = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0])
    unlabelled = torch.tensor([[0.0, 0.0]])  # lse = log 2: D = 2/3, -log D = log 1.5
    fake = torch.tensor([[math.log(3.0), -50.0]])  # lse ~ log 3: D = 3/4, -log(1 - D) = log 4
    supervised, unsupervised = discriminator_loss(labelled, labels, unlabelled, fake, unlabelled_weight=2.0)
    expected_supervised = 0.5 * (math.log(1 + math.exp(-2.0)) + math.log(1 + math.e))
    assert supervised.item() == pytest.approx(expected_supervised, rel=1e-6)
    assert unsupervised.item() == pytest.approx(2.0 * 0.5 * (math.log(1.5) + math.log(4.0)), rel=1e-5)


def test_feature_matching_compares_batch_means():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
    assert feature_matching_loss(real, fake).item() == pytest.approx((1 + 4) / 2)
    assert feature_matching_loss(real, real.flip(0)).item() == 0.0  # order within a batch does not matter


def _digits_regime(seed: int, labels_per_class: int) -> dict[str, np.ndarray]:
    """Digits split into test 400, val 200, a few labels per class, the rest an unlabelled pool."""
    digits = load_digits()
    images = np.round(digits.images * 255 / 16).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    test, val, rest = order[:400], order[400:600], order[600:]
    labelled = np.concatenate([rest[labels[rest] == c][:labels_per_class] for c in range(10)])
    pool = np.setdiff1d(rest, labelled)
    return {"images": images, "labels": labels, "test": test, "val": val, "labelled": labelled, "pool": pool}


def _tensors(regime: dict[str, np.ndarray], part: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = regime[part]
    return images_to_tensor(regime["images"][rows]), torch.from_numpy(regime["labels"][rows])


TINY = SemiSupervisedConfig(steps=40, batch_size=32, discriminator_widths=[64, 32], generator_widths=[32], device="cpu")


def test_same_seed_gives_the_same_discriminator_and_samples():
    regime = _digits_regime(0, 3)
    runs = [train_semi_supervised(_tensors(regime, "labelled"), _tensors(regime, "pool")[0], _tensors(regime, "val"), 10,
                                  TINY, seed=5) for _ in range(2)]
    for (name, a), b in zip(runs[0].discriminator.state_dict().items(), runs[1].discriminator.state_dict().values()):
        assert torch.equal(a, b), name
    images, probabilities = runs[0].sample(12, seed=1)
    again, _ = runs[1].sample(12, seed=1)
    assert images.shape == (12, 1, 8, 8) and torch.equal(images, again)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.allclose(probabilities.sum(1), torch.ones(12))
    assert runs[0].history[-1]["step"] == 40 and runs[0].best_step in {h["step"] for h in runs[0].history}


def test_an_empty_pool_or_mismatched_shapes_are_refused():
    regime = _digits_regime(0, 3)
    labelled = _tensors(regime, "labelled")
    with pytest.raises(DataError, match="pool is empty"):
        train_semi_supervised(labelled, labelled[0][:0], None, 10, TINY)
    with pytest.raises(DataError, match="pool images are"):
        train_semi_supervised(labelled, torch.zeros(5, 1, 4, 4), None, 10, TINY)


def test_the_pool_makes_the_discriminator_beat_a_classifier_trained_on_the_labels_alone():
    """Quality against a baseline: the `real` protocol's CNN on the same 2 labels per class, 2 seeds.

    Measured on seeds 0-2: the discriminator 0.830, 0.892, 0.835; the CNN 0.805, 0.795, 0.780.
    """
    cfg = SemiSupervisedConfig(steps=1200, discriminator_widths=[256, 128, 64], generator_widths=[128, 128], device="cpu")
    semi, real = [], []
    for seed in range(2):
        regime = _digits_regime(seed, 2)
        test_x, test_y = _tensors(regime, "test")
        gan = train_semi_supervised(_tensors(regime, "labelled"), _tensors(regime, "pool")[0], _tensors(regime, "val"), 10,
                                    cfg, seed=seed)
        semi.append(float((predict_logits(gan.discriminator, test_x).argmax(1) == test_y).float().mean()))
        baseline = train_classifier(ArchSpec(), _tensors(regime, "labelled"), _tensors(regime, "val"), 10,
                                    TrainConfig(steps=300, device="cpu"), seed=seed)
        real.append(float((predict_logits(baseline.model, test_x).argmax(1) == test_y).float().mean()))
    assert np.mean(semi) > np.mean(real) + 0.03, (semi, real)
