"""Prefect artifacts built from the stages' typed results: what the UI shows for a run.

Keys are stable so the UI's Artifacts page keeps each one's history across runs. Images are
embedded in markdown as `data:image/png;base64` URIs, which the Prefect UI renders without any
network access (checked by `deployments/ui_check.py`).
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from ganaug.store import DatasetRef, SyntheticRef, read_dataset

KEY_DATASET = "ganaug-dataset"
KEY_GAN_PROGRESS = "ganaug-gan-progress"
KEY_GAN_METRICS = "ganaug-gan-metrics"
KEY_GAN_SAMPLES = "ganaug-gan-samples"
KEY_SYNTHETIC = "ganaug-synthetic"
KEY_EVALUATION = "ganaug-evaluation"
KEY_EVALUATION_REPORT = "ganaug-evaluation-report"
KEY_LEADERBOARD = "ganaug-nas-leaderboard"
KEY_RUN = "ganaug-run-summary"
MAX_IMAGE_BYTES = 2_000_000  # larger PNGs are linked by path instead of embedded


def png_markdown(path: str | Path, alt: str) -> str:
    """Markdown that shows a PNG inline (data URI), or names its path when it is too large."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_IMAGE_BYTES:
        return f"*{alt}: {path} ({len(data) // 1024} KiB, too large to embed)*"
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def _clean(value: Any) -> Any:
    """Table cells: floats rounded, NaN as empty, everything else as is."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


# ---------------------------------------------------------------- ingest


def dataset_summary(ref: DatasetRef) -> dict[str, Any]:
    """Class counts per split of a dataset (a table artifact) and a one-line description."""
    from ganaug.data.ingest import split_counts

    loaded = read_dataset(ref)
    meta = loaded.meta
    counts = split_counts(loaded.labels, loaded.splits, meta.class_names)
    rows = [
        {"class": name, **per_split, "total": sum(per_split.values())} for name, per_split in counts.items()
    ]
    totals = {split: sum(row[split] for row in rows) for split in ("train", "val", "test")}
    rows.append({"class": "all", **totals, "total": sum(totals.values())})
    description = (
        f"{meta.ingestion_source}: {ref.rows} images of {meta.channels}x{meta.height}x{meta.width}, "
        f"{meta.num_classes} classes; content hash {ref.content_hash[:12]}"
    )
    create_table_artifact(table=rows, key=KEY_DATASET, description=f"Dataset: {description}")
    return {"rows": rows, "description": description}


# ---------------------------------------------------------------- GAN training


class GanProgress:
    """GAN training callbacks: a progress artifact kept up to date (at most ~100 updates) and sample grids."""

    def __init__(self) -> None:
        self.artifact_id: UUID | None = None
        self.total_steps = 1
        self._every = 1
        self._last_update = -1
        self._log_every = 1
        self._last_log = -1
        self.monitor = ""  # the collapse monitor's latest reading

    def on_start(self, step: int, total_steps: int) -> None:
        self.total_steps = max(1, total_steps)
        self._every = max(1, self.total_steps // 100)
        self._log_every = max(1, self.total_steps // 10)
        self._last_log = step
        resumed = f" (resumed at step {step})" if step else ""
        self.artifact_id = create_progress_artifact(
            progress=100.0 * step / self.total_steps,
            key=KEY_GAN_PROGRESS,
            description=f"GAN training: step {step} of {self.total_steps}{resumed}",
        )

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        from ganaug.gan.monitor import reading_summary

        losses = ", ".join(
            f"{name} {metrics[name]:.3f}" for name in ("d_loss", "g_loss") if isinstance(metrics.get(name), float)
        )
        reading = reading_summary(metrics)
        if reading:
            self.monitor = reading
        if metrics.get("collapsed"):
            get_run_logger().warning("GAN step %d: class(es) %s collapsed (within-class spread below collapse_spread "
                                     "of the real val spread); see the sample grids", step, ", ".join(metrics["collapsed"]))
        if step - self._last_log >= self._log_every or step >= self.total_steps or reading:
            self._last_log = step
            get_run_logger().info("GAN step %d/%d (%.0f%%): %s%s", step, self.total_steps,
                                  100.0 * step / self.total_steps, losses, f"; {reading}" if reading else "")
        if self.artifact_id is None or (step - self._last_update < self._every and step < self.total_steps and not reading):
            return
        self._last_update = step
        details = "; ".join(part for part in (losses, self.monitor) if part)
        update_progress_artifact(
            artifact_id=self.artifact_id,
            progress=min(100.0, 100.0 * step / self.total_steps),
            description=f"GAN training: step {step} of {self.total_steps}" + (f" ({details})" if details else ""),
        )

    def on_samples(self, step: int, path: Path) -> None:
        if step >= self.total_steps:
            return  # the final grid is published with the stage's result (cached runs included)
        create_markdown_artifact(
            markdown=f"# GAN samples at step {step}\n\nOne row per class.\n\n{png_markdown(path, f'samples at step {step}')}",
            key=KEY_GAN_SAMPLES,
            description=f"Generator samples at step {step} (one row per class)",
        )


def gan_metrics_table(metrics_path: str | Path, max_rows: int = 20) -> list[dict[str, Any]]:
    """Up to `max_rows` evenly spaced rows of the GAN's metrics.parquet (always the last one)."""
    import pandas as pd

    frame = pd.read_parquet(metrics_path)
    if len(frame) > max_rows:
        picks = sorted({round(i * (len(frame) - 1) / (max_rows - 1)) for i in range(max_rows)})
        frame = frame.iloc[picks]
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def gan_artifacts(result: Any) -> None:
    """Final training metrics (a table of evenly spaced steps) and the final sample grid."""
    rows = gan_metrics_table(result.metrics_path)
    create_table_artifact(
        table=rows, key=KEY_GAN_METRICS,
        description=(
            f"GAN training metrics: {result.steps} steps on {result.device} in {result.seconds:.1f} s "
            f"({result.images_per_second:.0f} images/s), checkpoint {result.checkpoint_id[:12]}"
            + (f"; best checkpoint on val: step {result.best_step}" if getattr(result, "best_step", None) is not None else "")
        ),
    )
    if Path(result.grid_path).is_file():
        create_markdown_artifact(
            markdown=f"# GAN samples after {result.steps} steps\n\nOne row per class.\n\n"
                     f"{png_markdown(result.grid_path, 'final samples')}",
            key=KEY_GAN_SAMPLES, description=f"Final generator samples (step {result.steps}, one row per class)",
        )


# ---------------------------------------------------------------- evaluation and search


def evaluation_artifacts(result: Any, confidence: float) -> None:
    """The protocol table with paired-difference confidence intervals (table + markdown)."""
    from ganaug.report.markdown import summary_markdown

    rows = []
    for row in result.summary:
        entry = {
            "train_fraction": row.train_fraction,
            "protocol": row.protocol,
            "ratio": row.ratio,
            "seeds": row.runs,
            "accuracy_mean": row.accuracy_mean,
            "accuracy_std": row.accuracy_std,
            "macro_f1_mean": row.macro_f1_mean,
        }
        for name in ("vs_real", "vs_classic"):
            interval = getattr(row, name)
            entry[f"{name}_mean"] = interval.mean if interval is not None else None
            entry[f"{name}_ci_low"] = interval.low if interval is not None else None
            entry[f"{name}_ci_high"] = interval.high if interval is not None else None
        rows.append({k: _clean(v) for k, v in entry.items()})
    level = f"{confidence:.0%}"
    create_table_artifact(
        table=rows, key=KEY_EVALUATION,
        description=f"Held-out test accuracy per protocol; paired differences with {level} confidence intervals",
    )
    parts = ["# Evaluation on the real test split", "", summary_markdown(result.summary, confidence)]
    if result.generative_metrics:
        parts += ["", "## Generative metrics", "", "| metric | value |", "|---|---|"]
        parts += [f"| {k} | {_format_metric(v)} |" for k, v in result.generative_metrics.items()]
    if result.plot_path and Path(result.plot_path).is_file():
        parts += ["", png_markdown(result.plot_path, "accuracy per protocol")]
    for note in result.notes:
        parts += ["", f"> {note}"]
    create_markdown_artifact(markdown="\n".join(parts), key=KEY_EVALUATION_REPORT, description="Evaluation report")


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_metric(v)}" for k, v in value.items())
    return str(value)


def leaderboard(trials_path: str | Path, top: int = 15) -> list[dict[str, Any]]:
    """The best `top` finished trials of a search, best first."""
    import pandas as pd

    frame = pd.read_parquet(trials_path)
    finished = frame[frame["state"].isin(["complete", "pruned"]) & frame["fitness"].notna()]
    finished = finished.sort_values(["fitness", "parameter_count"], ascending=[False, True]).head(top)
    columns = [c for c in ("number", "state", "role", "fidelity", "fitness", "parameter_count", "latency_ms",
                           "cost_seconds", "steps_run", "pareto", "arch_json") if c in finished.columns]
    return [{k: _clean(v) for k, v in row.items()} for row in finished[columns].to_dict(orient="records")]


def search_artifacts(result: Any) -> None:
    rows = leaderboard(result.trials_path)
    create_table_artifact(
        table=rows, key=KEY_LEADERBOARD,
        description=(
            f"NAS leaderboard ({result.strategy}, {result.n_trials} trials): best val accuracy "
            f"{result.best_fitness:.4f}, test accuracy {result.test_accuracy_real:.4f} (real)"
            + (f" / {result.test_accuracy_augmented:.4f} (augmented)" if result.test_accuracy_augmented is not None else "")
        ),
    )


def synthetic_summary(ref: SyntheticRef) -> list[dict[str, Any]]:
    """Synthetic images per class (and mean quality score when filtering recorded one)."""
    from ganaug.store import SYNTHETIC_SCHEMA

    loaded = read_dataset(ref, SYNTHETIC_SCHEMA)
    scores = loaded.extra_columns.get("quality_score")
    rows = []
    for code, name in enumerate(loaded.meta.class_names):
        mask = loaded.labels == code
        row: dict[str, Any] = {"class": name, "images": int(mask.sum())}
        if scores is not None and mask.any():
            values = [float(s) for s in scores[mask] if s is not None and not math.isnan(float(s))]
            row["mean_quality_score"] = _clean(sum(values) / len(values)) if values else None
        rows.append(row)
    create_table_artifact(
        table=rows, key=KEY_SYNTHETIC, description=f"Synthetic images per class ({ref.rows} in all)"
    )
    return rows


def run_summary_markdown(run_dir: Path, stages: dict[str, str], lines: list[str]) -> None:
    """The pipeline's closing artifact: where the run lives and what each stage did."""
    table = ["| stage | outcome |", "|---|---|"] + [f"| {name} | {outcome} |" for name, outcome in stages.items()]
    text = "\n".join([f"# ganaug run `{run_dir.name}`", "", f"Run folder: `{run_dir}`", "", *table, "", *lines])
    create_markdown_artifact(markdown=text, key=KEY_RUN, description="Pipeline run summary")
