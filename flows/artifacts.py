"""Prefect artifacts of the stages' results (tables and markdown from `ganaug.report.summaries`) and progress.

Keys (ganaug-...) are stable so the UI's Artifacts page keeps each one's history across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from ganaug.report import summaries
from ganaug.store import DatasetRef, SyntheticRef


def dataset(ref: DatasetRef) -> None:
    rows, description = summaries.dataset_table(ref)
    create_table_artifact(table=rows, key="ganaug-dataset", description=f"Dataset: {description}")


class ProgressArtifact:
    """A progress artifact of `total` units, updated at most ~100 times (always at the end, or when `force`d)."""

    def __init__(self, key: str, total: int, done: int, description: str) -> None:
        self.total, self.last = max(1, total), done
        self.every = max(1, self.total // 100)
        self.artifact_id = create_progress_artifact(progress=100.0 * done / self.total, key=key, description=description)

    def update(self, done: int, description: str, force: bool = False) -> None:
        if done - self.last >= self.every or done >= self.total or force:
            self.last = done
            update_progress_artifact(artifact_id=self.artifact_id, progress=min(100.0, 100.0 * done / self.total),
                                     description=description)


class GanProgress:
    """GAN training callbacks: a progress artifact, a log line every tenth of the training, and sample grids."""

    def __init__(self) -> None:
        self.bar: ProgressArtifact | None = None
        self.monitor, self.logged = "", 0  # the collapse monitor's latest reading, the step last logged

    def on_start(self, step: int, total_steps: int) -> None:
        resumed = f" (resumed at step {step})" if step else ""
        self.bar = ProgressArtifact("ganaug-gan-progress", total_steps, step,
                                    f"GAN training: step {step} of {total_steps}{resumed}")
        self.logged = step

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        from ganaug.gan.monitor import reading_summary

        losses = ", ".join(f"{name} {metrics[name]:.3f}" for name in ("d_loss", "g_loss")
                           if isinstance(metrics.get(name), float))
        reading = reading_summary(metrics)  # a collapse is logged as a warning by the GAN stage itself
        self.monitor = reading or self.monitor
        if self.bar is None:
            return
        total = self.bar.total
        if step - self.logged >= max(1, total // 10) or step >= total or reading:
            self.logged = step
            get_run_logger().info("GAN step %d/%d (%.0f%%): %s%s", step, total, 100.0 * step / total, losses,
                                  f"; {reading}" if reading else "")
        details = "; ".join(part for part in (losses, self.monitor) if part)
        self.bar.update(step, f"GAN training: step {step} of {total}" + (f" ({details})" if details else ""),
                        force=bool(reading))

    def on_samples(self, step: int, path: Path) -> None:
        if self.bar is not None and step < self.bar.total:  # the final grid is published with the stage's result
            create_markdown_artifact(markdown=summaries.gan_samples_markdown(path, step), key="ganaug-gan-samples",
                                     description=f"Generator samples at step {step} (one row per class)")


def gan(result: Any) -> None:
    """Final training metrics (a table of evenly spaced steps) and the final sample grid."""
    create_table_artifact(table=summaries.gan_metrics_table(result.metrics_path), key="ganaug-gan-metrics",
                          description=summaries.gan_description(result))
    if Path(result.grid_path).is_file():
        create_markdown_artifact(markdown=summaries.gan_samples_markdown(result.grid_path, result.steps, final=True),
                                 key="ganaug-gan-samples",
                                 description=f"Final generator samples (step {result.steps}, one row per class)")


def synthetic(ref: SyntheticRef) -> None:
    create_table_artifact(table=summaries.synthetic_table(ref), key="ganaug-synthetic",
                          description=f"Synthetic images per class ({ref.rows} in all)")


def evaluation(result: Any, confidence: float) -> None:
    """The protocol table with paired-difference confidence intervals (table + markdown)."""
    create_table_artifact(table=summaries.evaluation_table(result), key="ganaug-evaluation",
                          description=f"Held-out test accuracy per protocol; paired differences with {confidence:.0%} "
                                      "confidence intervals")
    create_markdown_artifact(markdown=summaries.evaluation_markdown(result, confidence), key="ganaug-evaluation-report",
                             description="Evaluation report")


class SearchProgress:
    """A progress artifact for the search: finished trials out of the budget."""

    def __init__(self, total: int) -> None:
        self.bar, self.done = ProgressArtifact("ganaug-nas-progress", total, 0, f"NAS: 0 of {total} trials"), 0

    def __call__(self, row: dict[str, Any]) -> None:
        self.done += 1
        fitness = row.get("fitness")
        best = f", last fitness {fitness:.4f}" if isinstance(fitness, float) else ""
        get_run_logger().info("NAS trial %d/%d (%s)%s", self.done, self.bar.total, row.get("state", "?"), best)
        self.bar.update(self.done, f"NAS: {self.done} of {self.bar.total} trials{best}", force=True)


def search(result: Any) -> None:
    create_table_artifact(table=summaries.leaderboard_table(result.trials_path), key="ganaug-nas-leaderboard",
                          description=summaries.search_description(result))


def tune(result: Any, rows: list[dict[str, Any]]) -> None:
    create_markdown_artifact(summaries.tune_markdown(result, rows), key="ganaug-tune", description="GAN tuning trials")


def run_summary(run_dir: Path, stages: dict[str, str], lines: list[str]) -> None:
    create_markdown_artifact(markdown=summaries.run_summary_markdown(run_dir, stages, lines), key="ganaug-run-summary",
                             description="Pipeline run summary")
