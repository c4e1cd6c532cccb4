"""Summary statistics: mean and spread per protocol, confidence intervals of paired differences."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats


class Interval(BaseModel):
    """Mean paired difference over seeds with a t-based confidence interval (None with one seed)."""

    model_config = ConfigDict(frozen=True)

    mean: float
    low: float | None
    high: float | None
    pairs: int


class SummaryRow(BaseModel):
    """One (regime, protocol, ratio) line of the protocol table."""

    model_config = ConfigDict(frozen=True)

    train_fraction: float
    protocol: str
    ratio: float | None
    runs: int
    accuracy_mean: float
    accuracy_std: float
    macro_f1_mean: float
    n_real: float
    n_synthetic: float
    vs_real: Interval | None = None
    vs_classic: Interval | None = None


def paired_interval(differences: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean of paired differences with a Student-t confidence interval."""
    values = np.asarray(list(differences), dtype=float)
    if len(values) == 0:
        raise ValueError("no paired differences")
    mean = float(values.mean())
    if len(values) < 2:
        return Interval(mean=mean, low=None, high=None, pairs=1)
    half = float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return Interval(mean=mean, low=mean - half, high=mean + half, pairs=len(values))


def _key(row: dict[str, Any]) -> tuple[float, str, float | None]:
    ratio = row.get("ratio")
    ratio = None if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)) else float(ratio)
    return float(row["train_fraction"]), str(row["protocol"]), ratio


def _paired(runs: list[dict[str, Any]], baseline: list[dict[str, Any]], confidence: float) -> Interval | None:
    by_seed = {int(r["seed"]): float(r["accuracy"]) for r in baseline}
    diffs = [float(r["accuracy"]) - by_seed[int(r["seed"])] for r in runs if int(r["seed"]) in by_seed]
    return paired_interval(diffs, confidence) if diffs else None


def summarize(rows: list[dict[str, Any]], confidence: float = 0.95) -> list[SummaryRow]:
    """Group run rows by (regime, protocol, ratio); pair seeds against `real` and `classic`."""
    groups: dict[tuple[float, str, float | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    order = {"real": 0, "classic": 1, "augmented": 2, "synthetic": 3}
    summary = []
    for key in sorted(groups, key=lambda k: (k[0], order.get(k[1], 9), k[2] or 0.0)):
        fraction, protocol, ratio = key
        runs = groups[key]
        accuracies = np.array([float(r["accuracy"]) for r in runs])
        real = groups.get((fraction, "real", None), [])
        classic = groups.get((fraction, "classic", None), [])
        summary.append(
            SummaryRow(
                train_fraction=fraction,
                protocol=protocol,
                ratio=ratio,
                runs=len(runs),
                accuracy_mean=float(accuracies.mean()),
                accuracy_std=float(accuracies.std(ddof=1)) if len(runs) > 1 else 0.0,
                macro_f1_mean=float(np.mean([float(r["macro_f1"]) for r in runs])),
                n_real=float(np.mean([r["n_real"] for r in runs])),
                n_synthetic=float(np.mean([r["n_synthetic"] for r in runs])),
                vs_real=_paired(runs, real, confidence) if protocol != "real" else None,
                vs_classic=_paired(runs, classic, confidence) if protocol in ("augmented", "synthetic") else None,
            )
        )
    return summary


def per_class_gains(rows: list[dict[str, Any]], num_classes: int) -> list[dict[str, Any]]:
    """Mean per-class recall of every non-real protocol minus that of `real`, per regime."""
    groups: dict[tuple[float, str, float | None], list[np.ndarray]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(np.asarray(row["per_class_recall"], dtype=float))
    gains = []
    for (fraction, protocol, ratio), recalls in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0.0)):
        real = groups.get((fraction, "real", None))
        if protocol == "real" or not real:
            continue
        delta = np.mean(recalls, axis=0) - np.mean(real, axis=0)
        gains.append({"train_fraction": fraction, "protocol": protocol, "ratio": ratio,
                      "gain": [float(v) for v in delta[:num_classes]]})
    return gains
