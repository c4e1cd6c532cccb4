"""Rank correlation without scipy: Spearman's rho (ties get average ranks) and Kendall's tau-b.

The benchmark runs on machines with only numpy and torch, so the search and the benchmark share
these instead of `scipy.stats`; they give the same values as `spearmanr` and `kendalltau` (tau-b).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ganaug.errors import ConfigError


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n; tied values share the mean of the ranks they span (e.g. [5, 7, 7] -> [1, 2.5, 2.5])."""
    array = np.asarray(values, dtype=np.float64)
    order = np.argsort(array, kind="mergesort")
    ranks = np.empty(len(array), dtype=np.float64)
    sorted_values = array[order]
    start = 0
    while start < len(array):
        end = start
        while end + 1 < len(array) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def _check(first: Sequence[float], second: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(f"rank correlation needs two equally long sequences, got {a.shape} and {b.shape}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ConfigError("rank correlation got a NaN score; leave failed candidates out first")
    if len(a) < 2 or len(np.unique(a)) < 2 or len(np.unique(b)) < 2:
        return None  # undefined: fewer than two values, or one side constant
    return a, b


def spearman(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson correlation of the average ranks; None when undefined (a constant side)."""
    pair = _check(first, second)
    if pair is None:
        return None
    ra, rb = average_ranks(pair[0]), average_ranks(pair[1])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(np.clip((ra * rb).sum() / math.sqrt((ra * ra).sum() * (rb * rb).sum()), -1.0, 1.0))


def kendall(first: Sequence[float], second: Sequence[float]) -> float | None:
    """Kendall's tau-b, (concordant - discordant) / sqrt((n0 - ties_a) (n0 - ties_b)); None when undefined."""
    pair = _check(first, second)
    if pair is None:
        return None
    a, b = average_ranks(pair[0]), average_ranks(pair[1])  # ranks: -inf scores compare without NaN
    da = np.sign(a[:, None] - a[None, :])  # (n, n): +1, 0, -1 per ordered pair
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), k=1)
    sa, sb = da[upper], db[upper]
    score = float((sa * sb).sum())  # concordant - discordant (pairs tied on either side count 0)
    untied_a, untied_b = float(np.count_nonzero(sa)), float(np.count_nonzero(sb))
    return float(np.clip(score / math.sqrt(untied_a * untied_b), -1.0, 1.0))
