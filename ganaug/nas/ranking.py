"""Rank correlation between two score lists: `scipy.stats` Spearman's rho and Kendall's tau-b.

The wrappers keep the search's contract: NaN scores and unequal lengths are input errors, and an
undefined correlation (fewer than two values, or one side constant) is None rather than NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from ganaug.errors import ConfigError


def _check(first: Sequence[float], second: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"rank correlation needs two equally long sequences, got {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ConfigError("rank correlation got a NaN score; leave failed candidates out first")
    if len(a) < 2 or len(np.unique(a)) < 2 or len(np.unique(b)) < 2:
        return None  # undefined: fewer than two values, or one side constant (scipy would warn and give NaN)
    return a, b


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rho (ties get average ranks; -inf ranks lowest); None when undefined."""
    pair = _check(first, second)
    return None if pair is None else float(stats.spearmanr(*pair).statistic)


def kendall(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Kendall's tau-b (pairs tied on either side count neither way); None when undefined."""
    pair = _check(first, second)
    return None if pair is None else float(stats.kendalltau(*pair, variant="b").statistic)
