"""Summary statistics: mean and spread per protocol, confidence intervals of paired differences."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import stats

from ganaug.evaluate.config import SYNTHETIC_USES


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
    balanced_accuracy_mean: float | None = None
    val_score_mean: float | None = None  # the selection metric on val
    vs_oversampled: Interval | None = None
    metric: str = "accuracy"  # what the paired intervals compare
    vs_self_training: Interval | None = None


class Selection(BaseModel):
    """The best use of synthetic data in one regime, chosen on val, with its test-set evidence."""

    model_config = ConfigDict(frozen=True)

    train_fraction: float
    protocol: str
    ratio: float | None
    metric: str
    val_score: float
    vs_real: Interval | None
    vs_classic: Interval | None
    vs_oversampled: Interval | None
    helped: bool
    statement: str
    best_baseline: str | None = None  # the no-GAN baseline with the best val score, which a use must beat
    vs_best_baseline: Interval | None = None


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


def _paired(runs: list[dict[str, Any]], baseline: list[dict[str, Any]], confidence: float,
            metric: str = "accuracy") -> Interval | None:
    by_seed = {int(r["seed"]): float(r[metric]) for r in baseline}
    diffs = [float(r[metric]) - by_seed[int(r["seed"])] for r in runs if int(r["seed"]) in by_seed]
    return paired_interval(diffs, confidence) if diffs else None


VAL_COLUMN = {"accuracy": "val_accuracy", "macro_f1": "val_macro_f1"}


def _mean_of(runs: list[dict[str, Any]], column: str) -> float | None:
    values = [float(r[column]) for r in runs if r.get(column) is not None]
    return float(np.mean(values)) if values else None


def summarize(rows: list[dict[str, Any]], confidence: float = 0.95, metric: str = "accuracy") -> list[SummaryRow]:
    """Group run rows by (regime, protocol, ratio); pair seeds (on `metric`) against real, classic and oversampled."""
    groups: dict[tuple[float, str, float | None], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[_key(row)].append(row)
    order = {"real": 0, "classic": 1, "oversampled": 2, "self_training": 3, "synthetic": 9}
    summary = []
    for key in sorted(groups, key=lambda k: (k[0], order.get(k[1], 5), k[1] != "augmented", k[1], k[2] or 0.0)):
        fraction, protocol, ratio = key
        runs = groups[key]
        accuracies = np.array([float(r["accuracy"]) for r in runs])
        real = groups.get((fraction, "real", None), [])
        classic = groups.get((fraction, "classic", None), [])
        oversampled = groups.get((fraction, "oversampled", None), [])
        self_training = groups.get((fraction, "self_training", None), [])
        is_use = protocol in SYNTHETIC_USES or protocol == "synthetic"
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
                vs_real=_paired(runs, real, confidence, metric) if protocol != "real" else None,
                vs_classic=_paired(runs, classic, confidence, metric) if is_use else None,
                balanced_accuracy_mean=_mean_of(runs, "balanced_accuracy"),
                val_score_mean=_mean_of(runs, VAL_COLUMN[metric]),
                vs_oversampled=_paired(runs, oversampled, confidence, metric) if is_use else None,
                metric=metric,
                vs_self_training=_paired(runs, self_training, confidence, metric) if is_use else None,
            )
        )
    return summary


def protocol_label(protocol: str, ratio: float | None) -> str:
    """Display name of a protocol line, e.g. `augmented x1`."""
    return f"{protocol} x{ratio:g}" if ratio is not None else protocol


def select_use(summary: list[SummaryRow], label: Any = None) -> list[Selection]:
    """Per regime, the use of synthetic data with the best mean val score, and a plain verdict from its test pairs.

    Only val decides; the test split is read afterwards to state the result. A use helped when its
    paired test interval lies above zero against real and, where the regime has self_training (an
    unlabelled pool), against the no-GAN baseline with the best val score: beating real-only is
    not enough when a baseline uses the same extra data. `label(protocol, ratio)` names a line.
    """
    name = label or protocol_label
    selections = []
    for fraction in sorted({row.train_fraction for row in summary}):
        rows = [r for r in summary if r.train_fraction == fraction and r.val_score_mean is not None]
        candidates = [r for r in rows if r.protocol in SYNTHETIC_USES]
        if not candidates:
            continue
        best = max(candidates, key=lambda r: r.val_score_mean)  # first of equals: a stable order
        baseline = _best_baseline(rows)
        against = {"classic": best.vs_classic, "oversampled": best.vs_oversampled,
                   "self_training": best.vs_self_training, "real": best.vs_real}.get(baseline) if baseline else None
        helped = _above_zero(best.vs_real) and (baseline is None or _above_zero(against))
        what = f"{name(best.protocol, best.ratio)}, {_signed(best.vs_real)} vs real"
        what += f", {_signed(best.vs_classic)} vs classic" if best.vs_classic is not None else ""
        what += f", {_signed(best.vs_oversampled)} vs oversampled" if best.vs_oversampled is not None else ""
        what += f", {_signed(best.vs_self_training)} vs self-training" if best.vs_self_training is not None else ""
        statement = (f"best use of synthetic data: {what} ({best.metric})" if helped else
                     f"no use of synthetic data helped on this dataset (best on val: {what}; {best.metric})")
        selections.append(Selection(train_fraction=fraction, protocol=best.protocol, ratio=best.ratio, metric=best.metric,
                                    val_score=float(best.val_score_mean), vs_real=best.vs_real, vs_classic=best.vs_classic,
                                    vs_oversampled=best.vs_oversampled, helped=helped, statement=statement,
                                    best_baseline=baseline, vs_best_baseline=against))
    return selections


def _best_baseline(rows: list[SummaryRow]) -> str | None:
    """The no-GAN baseline a use must beat: with self_training present, the one of best val score; else None (real)."""
    if not any(r.protocol == "self_training" for r in rows):
        return None
    baselines = [r for r in rows if r.protocol in ("real", "classic", "oversampled", "self_training")]
    return max(baselines, key=lambda r: r.val_score_mean).protocol


def _above_zero(interval: Interval | None) -> bool:
    return interval is not None and interval.low is not None and interval.low > 0


def format_interval(interval: Interval | None) -> str:
    """`+0.012 [-0.003, +0.027]`, or the mean alone with a single seed."""
    if interval is None:
        return ""
    if interval.low is None or interval.high is None:
        return f"{interval.mean:+.3f} (1 seed, no CI)"
    return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def _signed(interval: Interval | None) -> str:
    return format_interval(interval) or "n/a"


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
