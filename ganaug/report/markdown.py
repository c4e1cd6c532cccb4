"""report.md of a run folder, built from whatever artifacts exist there."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from ganaug.data.splits import minority_classes
from ganaug.errors import DataError
from ganaug.evaluate.stats import (Interval, SummaryRow, format_interval, per_class_gains, protocol_label, select_use,
                                   summarize)
from ganaug.evaluate.table import read_evaluation
from ganaug.report.plots import accuracy_plot, sample_grid
from ganaug.runs import (DATASET_FILE, EVALUATION_FILE, EVALUATION_PLOT, GAN_DIR, NAS_DIR, REPORT_FILE, SAMPLES_GRID,
                         SYNTHETIC_FILE)
from ganaug.store import SYNTHETIC_SCHEMA, atomic_write_text, read_dataset

log = logging.getLogger(__name__)

PLOT_FILE = EVALUATION_PLOT
GRID_FILE = SAMPLES_GRID


def verdict(interval: Interval | None) -> str:
    """Plain reading of a paired difference: helps, hurts, or no clear difference."""
    if interval is None or interval.low is None or interval.high is None:
        return ""
    if interval.low > 0:
        return "helps"
    if interval.high < 0:
        return "hurts"
    return "no clear difference"


def summary_markdown(summary: list[SummaryRow], confidence: float = 0.95) -> str:
    """The protocol table with paired differences and their confidence intervals (vs self-training where it ran)."""
    metric = summary[0].metric if summary else "accuracy"
    level = f"{confidence:.0%} CI" if metric == "accuracy" else f"{metric}, {confidence:.0%} CI"
    pool = any(row.vs_self_training is not None for row in summary)
    lines = [
        f"| train kept | protocol | real imgs | synthetic imgs | seeds | accuracy (mean ± std) | macro-F1 "
        f"| vs real ({level}) | verdict | vs classic ({level}) | verdict |" + (f" vs self-training ({level}) | verdict |" if pool else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if pool else ""),
    ]
    for row in summary:
        lines.append(
            f"| {row.train_fraction:.0%} | {protocol_label(row.protocol, row.ratio)} | {row.n_real:.0f} "
            f"| {row.n_synthetic:.0f} | {row.runs} | {row.accuracy_mean:.4f} ± {row.accuracy_std:.4f} "
            f"| {row.macro_f1_mean:.4f} | {format_interval(row.vs_real)} | {verdict(row.vs_real)} "
            f"| {format_interval(row.vs_classic)} | {verdict(row.vs_classic)} |"
            + (f" {format_interval(row.vs_self_training)} | {verdict(row.vs_self_training)} |" if pool else "")
        )
    return "\n".join(lines)


def pool_markdown(rows: list[dict[str, Any]], pool: dict[str, Any] | None) -> str:
    """The pool's size and what ingestion dropped, and per pool protocol the pseudo-labels used and what val chose."""
    from ganaug.data.pool import describe_pool

    summary = describe_pool(pool) if pool else ""
    lines = [f"{summary[0].upper()}{summary[1:]}."] if summary else []
    pool_rows = [r for r in rows if r.get("pool_details") is not None]
    if pool_rows:
        lines += ["", "| train kept | protocol | seed | pseudo-labels used | share of the pool | chosen on val |", "|---|---|---|---|---|---|"]
        for row in sorted(pool_rows, key=lambda r: (r["train_fraction"], r["protocol"], r["seed"])):
            details = json.loads(row["pool_details"])
            size = details.get("pool") or (pool or {}).get("rows") or 0
            share = f"{row['n_pseudo'] / size:.1%}" if size and row.get("n_pseudo") is not None else ""
            chosen = ", ".join(f"{key} {value}" for key, value in details.items() if key in ("threshold", "round_kept", "gan_steps"))
            lines.append(f"| {row['train_fraction']:.0%} | {row['protocol']} | {row['seed']} | {row.get('n_pseudo') or 0} "
                         f"| {share} | {chosen} |")
    return "\n".join(lines)


def training_markdown(rows: list[dict[str, Any]]) -> str:
    """Per protocol: steps trained, the best val step of each seed and the val accuracy there."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["train_fraction"], row["protocol"], row["ratio"]), []).append(row)
    lines = ["| train kept | protocol | steps | best val step per seed | val accuracy per seed |", "|---|---|---|---|---|"]
    for (fraction, protocol, ratio), members in groups.items():
        members = sorted(members, key=lambda r: r["seed"])
        steps = sorted({int(r["steps_run"]) for r in members})
        lines.append(
            f"| {fraction:.0%} | {protocol_label(protocol, ratio)} | {', '.join(map(str, steps))} "
            f"| {', '.join(str(int(r['best_step'])) for r in members)} "
            f"| {', '.join(format(r['val_accuracy'], '.4f') for r in members)} |"
        )
    return "\n".join(lines)


def _regime(fraction: float) -> str:
    return "" if fraction >= 1.0 else f"{fraction:.0%} of the train split: "


def _metrics_markdown(metrics: dict[str, Any]) -> str:
    names = [
        ("frechet_distance", "Fréchet distance (classifier features; lower is better)"),
        ("frechet_distance_real_halves", "Fréchet distance between two halves of the real set (noise floor)"),
        ("precision", "precision (synthetic inside the real manifold)"),
        ("recall", "recall (real inside the synthetic manifold)"),
        ("density", "density"),
        ("coverage", "coverage"),
        ("gan_test_accuracy", "GAN-test: real-trained classifier's accuracy on synthetic samples"),
        ("feature_classifier_val_accuracy", "val accuracy of the feature classifier"),
    ]
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {label} | {metrics[key]:.4f} |" for key, label in names if key in metrics]
    if "feature_classifier_steps" in metrics:
        lines.append(f"| feature classifier: steps trained, best val step | {metrics['feature_classifier_steps']}, "
                     f"{metrics['feature_classifier_best_step']} |")
    if metrics.get("warning"):
        lines.append(f"\n**Warning:** {metrics['warning']}.")
    lines.append(
        f"\nFeatures: penultimate layer of a classifier trained on the real train split; "
        f"{metrics.get('real_samples')} real ({metrics.get('reference_split')} split) vs "
        f"{metrics.get('synthetic_samples')} synthetic samples, k = {metrics.get('nearest_k')}."
    )
    return "\n".join(lines)


def _gains_markdown(rows: list[dict[str, Any]], class_names: list[str], train_counts: list[int] | None = None) -> str:
    """Per-class recall of real-only and each protocol's gain over it; minority classes in bold.

    A minority class has fewer than half the training images of the largest class (all training
    images of the dataset, before any train_fraction).
    """
    gains = per_class_gains(rows, len(class_names))
    if not gains:
        return ""
    names = list(class_names)
    if train_counts and len(train_counts) == len(names):
        names = [f"**{name}** ({n})" if minority else f"{name} ({n})"
                 for name, n, minority in zip(names, train_counts, minority_classes(train_counts))]
    header = "| train kept | protocol | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 2)]
    for fraction in sorted({gain["train_fraction"] for gain in gains}):
        real = [np.asarray(r["per_class_recall"], dtype=float) for r in rows
                if r["protocol"] == "real" and r["train_fraction"] == fraction]
        if real:
            cells = " | ".join(f"{v:.3f}" for v in np.mean(real, axis=0)[:len(names)])
            lines.append(f"| {fraction:.0%} | real (recall) | {cells} |")
    for gain in gains:
        cells = " | ".join(f"{v:+.3f}" for v in gain["gain"])
        lines.append(f"| {gain['train_fraction']:.0%} | {protocol_label(gain['protocol'], gain['ratio'])} | {cells} |")
    return "\n".join(lines)


def _evaluation_section(run_dir: Path, path: Path) -> tuple[list[str], dict[str, Any] | None]:
    if not path.is_file():
        return [], None
    rows, meta = read_evaluation(path)
    confidence = float(meta.get("confidence", 0.95))
    metric = str(meta.get("selection_metric", "accuracy"))
    summary = summarize(rows, confidence, metric)
    selections = select_use(summary, protocol_label)
    accuracy_plot(summary, run_dir / PLOT_FILE)
    parts = [
        "## Does the synthetic data help?",
        "Every classifier is scored on the untouched real test split; checkpoints are chosen on the real val split. "
        "Differences are paired by seed (same real subset and initialisation seed); "
        "'helps'/'hurts' means the confidence interval excludes zero.",
        summary_markdown(summary, confidence),
        *[f"**{_regime(s.train_fraction)}{s.statement[0].upper()}{s.statement[1:]}.**" for s in selections],
        *([f"The best use is chosen on val ({metric}); the intervals pair seeds on the test {metric}."]
          if selections else []),
        f"![accuracy per protocol and regime]({PLOT_FILE})",
        "### How each classifier was trained",
        "Budgets are optimizer steps with a one-cycle learning-rate schedule; the weights of the best val "
        "evaluation are kept.",
        training_markdown(rows),
    ]
    gains = _gains_markdown(rows, list(meta.get("class_names", [])), meta.get("class_train_counts"))
    if gains:
        parts += ["### Per-class recall: real-only, and each protocol's gain over it (mean over seeds)",
                  "Minority classes (under half the training images of the largest) in bold; training images in brackets.",
                  gains]
    pool = pool_markdown(rows, meta.get("pool"))
    if pool:
        parts += ["## The unlabelled pool", pool]
    if meta.get("generative_metrics"):
        parts += ["## Generative metrics", _metrics_markdown(meta["generative_metrics"])]
    if meta.get("notes"):
        parts += ["## Notes"] + [f"- {note}" for note in meta["notes"]]
    return parts, meta


def _artifact_path(run_dir: Path, meta: dict[str, Any] | None, key: str, default: str) -> Path | None:
    recorded = (meta or {}).get(key) or {}
    for candidate in (run_dir / default, Path(recorded["path"]) if recorded.get("path") else None):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def _samples_section(run_dir: Path, meta: dict[str, Any] | None) -> list[str]:
    dataset_path = _artifact_path(run_dir, meta, "dataset", DATASET_FILE)
    if dataset_path is None:
        return []
    real = read_dataset(dataset_path)
    train = real.select(split="train", source="real")
    synthetic_path = _artifact_path(run_dir, meta, "synthetic", SYNTHETIC_FILE)
    synthetic = None
    if synthetic_path is not None:
        loaded = read_dataset(synthetic_path, SYNTHETIC_SCHEMA)
        synthetic = (loaded.images, loaded.labels)
    sample_grid((real.images[train], real.labels[train]), synthetic, real.meta.class_names, run_dir / GRID_FILE)
    title = "## Real vs synthetic samples" if synthetic is not None else "## Real samples"
    return [title, f"One row per class; left real train images, right synthetic.\n\n![samples]({GRID_FILE})"]


def _demote(markdown: str) -> str:
    """Push headings of an embedded report one level down."""
    return re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", markdown, flags=re.MULTILINE)


def write_report(run_dir: Path, evaluation: Path | None = None, target: Path | None = None) -> Path:
    """Write run_dir/report.md from the evaluation table, sample grids, GAN grids and the NAS report.

    `evaluation` and `target` default to the run folder's evaluation.parquet and report.md; the
    evaluation stage passes temporary names so both files are renamed into place together.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} does not exist")
    evaluation, meta = _evaluation_section(run_dir, evaluation or run_dir / EVALUATION_FILE)
    parts = [f"# ganaug report: {run_dir.name}"]
    parts += evaluation or ["No evaluation.parquet in this run folder yet; run `ganaug evaluate`."]
    parts += _samples_section(run_dir, meta)
    gan_grids = sorted((run_dir / GAN_DIR).glob("*.png")) if (run_dir / GAN_DIR).is_dir() else []
    if gan_grids:
        parts += ["## GAN sample grids"] + [f"![{p.stem}]({p.relative_to(run_dir).as_posix()})" for p in gan_grids[-3:]]
    nas_report = run_dir / NAS_DIR / REPORT_FILE
    if nas_report.is_file():
        parts += ["## Architecture search", _demote(nas_report.read_text(encoding="utf-8"))]
    path = target or run_dir / REPORT_FILE
    atomic_write_text(path, "\n\n".join(parts) + "\n")
    log.info("wrote %s", path)
    return path
