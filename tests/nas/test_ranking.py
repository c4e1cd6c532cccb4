"""Rank correlation by hand: monotone, reversed, ties, -inf scores, undefined cases; agreement with scipy."""

from __future__ import annotations

import numpy as np
import pytest

from ganaug.errors import ConfigError
from ganaug.nas.ranking import average_ranks, kendall, spearman


def test_average_ranks_share_the_mean_rank_of_ties() -> None:
    assert average_ranks([5.0, 7.0, 7.0, 1.0]).tolist() == [2.0, 3.5, 3.5, 1.0]


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


def test_agrees_with_scipy_on_tied_random_data() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 5, 12).astype(float), rng.integers(0, 4, 12).astype(float)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
        assert kendall(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
