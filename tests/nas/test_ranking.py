"""Rank correlation by hand: monotone, reversed, ties, -inf scores, undefined cases; agreement with the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from ganaug.errors import ConfigError
from ganaug.nas.ranking import kendall, spearman


def test_monotone_and_reversed_rankings() -> None:
    a = [0.1, 0.5, 0.7, 0.9, 0.95]
    assert spearman(a, [1, 2, 3, 40, 500]) == pytest.approx(1.0)
    assert kendall(a, [1, 2, 3, 40, 500]) == pytest.approx(1.0)
    assert spearman(a, [9, 8, 7, 6, 5]) == pytest.approx(-1.0)
    assert kendall(a, [9, 8, 7, 6, 5]) == pytest.approx(-1.0)


def test_two_swaps_by_hand() -> None:
    # d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8; 2 of 10 pairs discordant: tau = (8 - 2) / 10
    assert spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert kendall([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.6)


def test_ties_by_hand() -> None:
    # ranks of b: 1.5, 1.5, 3.5, 3.5; rho = 4 / sqrt(5 * 4); tau-b = 4 concordant / sqrt(6 * (6 - 2 tied pairs))
    assert spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(4 / np.sqrt(20))
    assert kendall([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(4 / np.sqrt(24))


def test_minus_infinity_ranks_last() -> None:
    assert spearman([0.2, 0.5, 0.9], [float("-inf"), 0.0, 3.0]) == pytest.approx(1.0)
    assert kendall([0.2, 0.5, 0.9], [float("-inf"), 0.0, 3.0]) == pytest.approx(1.0)


def test_undefined_and_bad_input() -> None:
    assert spearman([1, 2, 3], [4, 4, 4]) is None and kendall([1, 1, 1], [1, 2, 3]) is None
    with pytest.raises(ConfigError, match="NaN"):
        spearman([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ConfigError, match="equally long"):
        kendall([1, 2, 3], [1, 2])


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1..n by counting; ties share the mean of the ranks they span."""
    below = (values[None, :] < values[:, None]).sum(1)
    tied = (values[None, :] == values[:, None]).sum(1)
    return below + (tied + 1) / 2


def test_agrees_with_the_definitions_on_tied_random_data() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 5, 12).astype(float), rng.integers(0, 4, 12).astype(float)
        rho = np.corrcoef(_mean_ranks(a), _mean_ranks(b))[0, 1]
        pairs = [(np.sign(a[i] - a[j]), np.sign(b[i] - b[j])) for i in range(12) for j in range(i)]
        untied_a, untied_b = sum(sa != 0 for sa, _ in pairs), sum(sb != 0 for _, sb in pairs)
        tau_b = sum(sa * sb for sa, sb in pairs) / np.sqrt(untied_a * untied_b)
        assert spearman(a, b) == pytest.approx(rho) and kendall(a, b) == pytest.approx(tau_b)
