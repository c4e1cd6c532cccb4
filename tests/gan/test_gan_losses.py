"""Each loss and penalty against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ganaug.gan.losses import (
    LOSSES,
    d_bce,
    d_hinge,
    d_wasserstein,
    g_bce,
    g_hinge,
    g_wasserstein,
    interpolate,
    r1_penalty,
    wgan_gradient_penalty,
)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_bce_losses_match_hand_values() -> None:
    # softplus(-2) = ln(1 + e^-2), softplus(1) = ln(1 + e), softplus(0.5) = ln(1 + e^0.5)
    expected_d = (math.log1p(math.exp(-2)) + math.log1p(math.e)) / 2 + math.log1p(math.exp(0.5))
    assert d_bce(t(2.0, -1.0), t(0.5)).item() == pytest.approx(expected_d, abs=1e-12)
    assert d_bce(t(0.0), t(0.0)).item() == pytest.approx(2 * math.log(2), abs=1e-12)
    expected_g = (math.log1p(math.exp(-0.5)) + math.log1p(math.e)) / 2
    assert g_bce(t(0.5, -1.0)).item() == pytest.approx(expected_g, abs=1e-12)


def test_bce_is_stable_for_large_logits() -> None:
    assert d_bce(t(1000.0), t(-1000.0)).item() == pytest.approx(0.0, abs=1e-12)
    assert g_bce(t(-1000.0)).item() == pytest.approx(1000.0)


def test_hinge_losses_match_hand_values() -> None:
    # real: relu(1-2)=0, relu(1-0.5)=0.5 -> 0.25; fake: relu(1-2)=0, relu(1+0)=1 -> 0.5
    assert d_hinge(t(2.0, 0.5), t(-2.0, 0.0)).item() == pytest.approx(0.75)
    assert g_hinge(t(1.0, 3.0)).item() == pytest.approx(-2.0)


def test_wasserstein_losses_match_hand_values() -> None:
    assert d_wasserstein(t(1.0, 3.0), t(0.5, 1.5)).item() == pytest.approx(-1.0)
    assert g_wasserstein(t(0.5, 1.5)).item() == pytest.approx(-1.0)


def test_losses_are_picked_by_config_name() -> None:
    assert LOSSES["bce"] == (d_bce, g_bce)
    assert LOSSES["hinge"] == (d_hinge, g_hinge)
    assert LOSSES["wgan-gp"] == (d_wasserstein, g_wasserstein)


def _linear_critic(x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    if weights is None:
        weights = torch.tensor([1.0, 2.0, 2.0], dtype=x.dtype)  # gradient norm 3 everywhere
    return (x * weights.view(1, 1, 1, 3)).flatten(1).sum(dim=1)


def test_r1_penalty_is_half_gamma_times_squared_gradient_norm() -> None:
    x = torch.randn(4, 1, 1, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64, requires_grad=True)
    penalty = r1_penalty(_linear_critic(x, weights), x, gamma=2.0)
    assert penalty.item() == pytest.approx(0.5 * 2.0 * 9.0)
    penalty.backward()  # the penalty trains D: d/dw (||w||^2) = 2w, times gamma/2
    assert torch.allclose(weights.grad, 2.0 * weights.detach())


def test_wgan_gradient_penalty_is_weight_times_squared_distance_from_one() -> None:
    x = torch.randn(5, 1, 1, 3, dtype=torch.float64, requires_grad=True)
    assert wgan_gradient_penalty(_linear_critic(x), x, weight=10.0).item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2)


def test_interpolate_moves_from_fake_to_real() -> None:
    real, fake = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    mixed = interpolate(real, fake, torch.tensor([0.25, 1.0]))
    assert torch.allclose(mixed[0], torch.full((1, 2, 2), 0.25)) and torch.equal(mixed[1], real[1])


def test_mode_seeking_penalty_by_hand() -> None:
    from ganaug.gan.losses import mode_seeking_penalty

    first, second = torch.zeros(2, 1, 2, 2), torch.full((2, 1, 2, 2), 0.5)  # mean |difference| 0.5
    z_first, z_second = torch.zeros(2, 3), torch.ones(2, 3)  # mean |difference| 1
    assert mode_seeking_penalty(first, second, z_first, z_second, 2.0, eps=0.0).item() == pytest.approx(4.0)
    # identical images for different noise (collapse): the penalty is weight / eps
    assert mode_seeking_penalty(first, first, z_first, z_second, 1.0, eps=1e-5).item() == pytest.approx(1e5)


def test_mode_seeking_pairs_fakes_of_one_class() -> None:
    from ganaug.gan.config import GanConfig
    from ganaug.gan.networks import ImageShape
    from ganaug.gan.trainer import GanTrainer

    cfg = GanConfig(mode_seeking=1.0, g_width=8, d_width=8, latent_dim=4, batch_size=5, device="cpu")
    trainer = GanTrainer(cfg, ImageShape(1, 8, 8, 3), torch.device("cpu"), torch.zeros(6, 1, 8, 8), torch.arange(6) % 3)
    assert trainer._fake_labels(torch.tensor([0, 1, 2, 2, 1])).tolist() == [0, 1, 0, 1, 1]
    losses = trainer.train_step()
    assert torch.isfinite(losses).all()
