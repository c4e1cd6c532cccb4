"""Fréchet distance and k-NN manifold metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from ganaug.errors import DataError
from ganaug.evaluate.metrics import frechet_distance, precision_recall_density_coverage


def closed_form(mu1, sigma1, mu2, sigma2) -> float:
    covmean = linalg.sqrtm(sigma1 @ sigma2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * covmean))


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_of_two_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([2.0, 0.0, 0.5])
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    sigma1, sigma2 = a @ a.T + 0.5 * np.eye(3), b @ b.T + 0.5 * np.eye(3)
    x = rng.multivariate_normal(mu1, sigma1, size=20000)
    y = rng.multivariate_normal(mu2, sigma2, size=20000)
    measured = frechet_distance(torch.from_numpy(x), torch.from_numpy(y))
    # exact on the sample statistics ...
    empirical = closed_form(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert measured == pytest.approx(empirical, rel=1e-6)
    # ... and close to the population value
    assert measured == pytest.approx(closed_form(mu1, sigma1, mu2, sigma2), rel=0.05)


def test_frechet_distance_of_shifted_isotropic_gaussians_is_the_squared_shift():
    x = torch.randn(5000, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert frechet_distance(x, x + 3.0) == pytest.approx(4 * 9.0, rel=1e-9)


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(DataError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))


def test_identical_sets_have_full_precision_recall_and_coverage():
    features = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    result = precision_recall_density_coverage(features, features, k=5)
    assert result["precision"] == result["recall"] == result["coverage"] == 1.0
    assert result["density"] >= 1.0


def test_far_apart_sets_score_zero():
    real = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    result = precision_recall_density_coverage(real, real + 100.0, k=3)
    assert result == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_on_points_on_a_line():
    # real at 0,1,2,3: with k=1 every radius is 1. Fake at 0.5 (inside balls of 0 and 1) and 10 (outside all).
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    fake = torch.tensor([[0.5], [10.0]])
    result = precision_recall_density_coverage(real, fake, k=1)
    assert result["precision"] == 0.5
    assert result["density"] == pytest.approx((2 + 0) / (1 * 2))
    assert result["coverage"] == 0.5  # balls of 0 and 1 hold a fake
    # fake radii (k=1): 9.5 for both; real within 9.5 of some fake: all four
    assert result["recall"] == 1.0
