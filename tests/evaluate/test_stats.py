"""Paired confidence intervals and the protocol summary against hand-computed values."""

from __future__ import annotations

import math

import pytest

from ganaug.evaluate.stats import paired_interval, per_class_gains, summarize


def row(protocol, seed, accuracy, ratio=None, fraction=1.0, recall=(1.0, 1.0)):
    return {"train_fraction": fraction, "protocol": protocol, "ratio": ratio, "seed": seed, "accuracy": accuracy,
            "macro_f1": accuracy, "per_class_recall": list(recall), "n_real": 10, "n_synthetic": 0 if ratio is None else 10}


def test_paired_interval_uses_student_t():
    interval = paired_interval([1.0, 2.0, 3.0], confidence=0.95)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, df=2) * sd / sqrt(n)
    assert interval.mean == pytest.approx(2.0)
    assert (interval.low, interval.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert interval.pairs == 3


def test_single_pair_has_no_interval():
    interval = paired_interval([0.5])
    assert interval.low is None and interval.high is None and interval.mean == 0.5


def test_summary_pairs_runs_by_seed():
    rows = [
        row("real", 0, 0.80), row("real", 1, 0.90), row("real", 2, 0.70),
        row("classic", 0, 0.85), row("classic", 1, 0.90), row("classic", 2, 0.80),
        # listed out of seed order on purpose: pairing must follow the seed, not the position
        row("augmented", 2, 0.75, ratio=1.0), row("augmented", 0, 0.82, ratio=1.0), row("augmented", 1, 0.93, ratio=1.0),
    ]
    summary = {s.protocol: s for s in summarize(rows)}
    assert [s.protocol for s in summarize(rows)] == ["real", "classic", "augmented"]
    augmented = summary["augmented"]
    assert augmented.runs == 3 and augmented.ratio == 1.0
    assert augmented.accuracy_mean == pytest.approx((0.82 + 0.93 + 0.75) / 3)
    assert augmented.vs_real.mean == pytest.approx((0.02 + 0.03 + 0.05) / 3)
    expected = paired_interval([0.02, 0.03, 0.05])
    assert (augmented.vs_real.low, augmented.vs_real.high) == pytest.approx((expected.low, expected.high))
    assert augmented.vs_classic.mean == pytest.approx((-0.03 + 0.03 - 0.05) / 3)
    assert summary["real"].vs_real is None and summary["classic"].vs_classic is None
    assert summary["real"].accuracy_std == pytest.approx(0.1)


def test_regimes_are_paired_separately():
    rows = [row("real", 0, 0.5, fraction=0.1), row("augmented", 0, 0.7, ratio=1.0, fraction=0.1),
            row("real", 0, 0.9), row("augmented", 0, 0.8, ratio=1.0)]
    summary = {(s.train_fraction, s.protocol): s for s in summarize(rows)}
    assert summary[(0.1, "augmented")].vs_real.mean == pytest.approx(0.2)
    assert summary[(1.0, "augmented")].vs_real.mean == pytest.approx(-0.1)


def test_per_class_gains():
    rows = [row("real", 0, 0.5, recall=(0.5, 1.0)), row("real", 1, 0.5, recall=(0.7, 1.0)),
            row("augmented", 0, 0.6, ratio=1.0, recall=(0.9, 0.9)), row("augmented", 1, 0.6, ratio=1.0, recall=(0.9, 0.7))]
    gains = per_class_gains(rows, 2)
    assert len(gains) == 1
    assert gains[0]["gain"] == pytest.approx([0.3, -0.2])


def test_per_class_table_gives_real_recall_and_bolds_minority_classes():
    from ganaug.report.markdown import _gains_markdown

    rows = [{"train_fraction": 1.0, "protocol": p, "ratio": r, "seed": s, "per_class_recall": rec}
            for s in range(2)
            for p, r, rec in (("real", None, [0.9, 0.4]), ("balanced", None, [0.9, 0.7]))]
    lines = _gains_markdown(rows, ["a", "b"], [100, 10]).splitlines()
    assert lines[0] == "| train kept | protocol | a (100) | **b** (10) |"
    assert lines[2] == "| 100% | real (recall) | 0.900 | 0.400 |"
    assert lines[3] == "| 100% | balanced | +0.000 | +0.300 |"
    assert "**" not in _gains_markdown(rows, ["a", "b"], [100, 60]).splitlines()[0]


def _with_val(rows, val):
    return [{**r, "val_accuracy": val[r["protocol"]]} for r in rows]


def test_with_a_pool_the_verdict_must_beat_self_training_not_only_real():
    from ganaug.evaluate.stats import select_use

    accuracies = {"real": (0.80, 0.82, 0.81), "classic": (0.85, 0.86, 0.85), "self_training": (0.95, 0.96, 0.94),
                  "gan_classifier": (0.93, 0.95, 0.93)}
    val = {"real": 0.8, "classic": 0.85, "self_training": 0.95, "gan_classifier": 0.94}
    rows = _with_val([row(p, s, a) for p, values in accuracies.items() for s, a in enumerate(values)], val)
    (selection,) = select_use(summarize(rows))
    assert selection.protocol == "gan_classifier" and selection.best_baseline == "self_training"
    assert selection.vs_real.low > 0  # far above real-only ...
    assert not selection.helped  # ... but below self-training on the same pool: no help
    assert "vs self-training" in selection.statement and selection.statement.startswith("no use of synthetic data helped")
    better = {**accuracies, "gan_classifier": (0.97, 0.98, 0.965)}
    rows = _with_val([row(p, s, a) for p, values in better.items() for s, a in enumerate(values)], val)
    (selection,) = select_use(summarize(rows))
    assert selection.helped and selection.vs_best_baseline.low > 0


def test_without_self_training_the_verdict_is_against_real_as_before():
    from ganaug.evaluate.stats import select_use

    accuracies = {"real": (0.80, 0.82, 0.81), "classic": (0.90, 0.91, 0.90), "augmented": (0.85, 0.86, 0.855)}
    rows = _with_val([row(p, s, a, ratio=1.0 if p == "augmented" else None) for p, values in accuracies.items()
                      for s, a in enumerate(values)], {"real": 0.8, "classic": 0.9, "augmented": 0.85})
    (selection,) = select_use(summarize(rows))
    assert selection.helped and selection.best_baseline is None
