"""Prefect artifacts of the stages' results (tables and markdown from `ganaug.report.summaries`) and progress.

Keys are stable so the UI's Artifacts page keeps each one's history across runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from ganaug.report import summaries
from ganaug.store import DatasetRef, SyntheticRef

KEY_DATASET = "ganaug-dataset"
KEY_GAN_PROGRESS = "ganaug-gan-progress"
KEY_GAN_METRICS = "ganaug-gan-metrics"
KEY_GAN_SAMPLES = "ganaug-gan-samples"
KEY_SYNTHETIC = "ganaug-synthetic"
KEY_EVALUATION = "ganaug-evaluation"
KEY_EVALUATION_REPORT = "ganaug-evaluation-report"
KEY_NAS_PROGRESS = "ganaug-nas-progress"
KEY_LEADERBOARD = "ganaug-nas-leaderboard"
KEY_TUNE = "ganaug-tune"
KEY_RUN = "ganaug-run-summary"


def dataset(ref: DatasetRef) -> None:
    rows, description = summaries.dataset_table(ref)
    create_table_artifact(table=rows, key=KEY_DATASET, description=f"Dataset: {description}")


class GanProgress:
    """GAN training callbacks: a progress artifact kept up to date (at most ~100 updates), logs and sample grids."""

    def __init__(self) -> None:
        self.artifact_id: UUID | None = None
        self.total_steps, self._every, self._last_update, self._log_every, self._last_log = 1, 1, -1, 1, -1
        self.monitor = ""  # the collapse monitor's latest reading

    def on_start(self, step: int, total_steps: int) -> None:
        self.total_steps = max(1, total_steps)
        self._every, self._log_every = max(1, self.total_steps // 100), max(1, self.total_steps // 10)
        self._last_log = step
        resumed = f" (resumed at step {step})" if step else ""
        self.artifact_id = create_progress_artifact(progress=100.0 * step / self.total_steps, key=KEY_GAN_PROGRESS,
                                                    description=f"GAN training: step {step} of {self.total_steps}{resumed}")

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        from ganaug.gan.monitor import reading_summary

        losses = ", ".join(f"{name} {metrics[name]:.3f}" for name in ("d_loss", "g_loss")
                           if isinstance(metrics.get(name), float))
        reading = reading_summary(metrics)
        self.monitor = reading or self.monitor
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
        update_progress_artifact(artifact_id=self.artifact_id, progress=min(100.0, 100.0 * step / self.total_steps),
                                 description=f"GAN training: step {step} of {self.total_steps}"
                                             + (f" ({details})" if details else ""))

    def on_samples(self, step: int, path: Path) -> None:
        if step < self.total_steps:  # the final grid is published with the stage's result (cached runs included)
            create_markdown_artifact(markdown=summaries.gan_samples_markdown(path, step), key=KEY_GAN_SAMPLES,
                                     description=f"Generator samples at step {step} (one row per class)")


def gan(result: Any) -> None:
    """Final training metrics (a table of evenly spaced steps) and the final sample grid."""
    create_table_artifact(table=summaries.gan_metrics_table(result.metrics_path), key=KEY_GAN_METRICS,
                          description=summaries.gan_description(result))
    if Path(result.grid_path).is_file():
        create_markdown_artifact(markdown=summaries.gan_samples_markdown(result.grid_path, result.steps, final=True),
                                 key=KEY_GAN_SAMPLES,
                                 description=f"Final generator samples (step {result.steps}, one row per class)")


def synthetic(ref: SyntheticRef) -> None:
    create_table_artifact(table=summaries.synthetic_table(ref), key=KEY_SYNTHETIC,
                          description=f"Synthetic images per class ({ref.rows} in all)")


def evaluation(result: Any, confidence: float) -> None:
    """The protocol table with paired-difference confidence intervals (table + markdown)."""
    create_table_artifact(table=summaries.evaluation_table(result), key=KEY_EVALUATION,
                          description=f"Held-out test accuracy per protocol; paired differences with {confidence:.0%} "
                                      "confidence intervals")
    create_markdown_artifact(markdown=summaries.evaluation_markdown(result, confidence), key=KEY_EVALUATION_REPORT,
                             description="Evaluation report")


class SearchProgress:
    """A progress artifact for the search: finished trials out of the budget."""

    def __init__(self, total: int) -> None:
        self.total, self.done = max(1, total), 0
        self.artifact_id = create_progress_artifact(progress=0.0, key=KEY_NAS_PROGRESS,
                                                    description=f"NAS: 0 of {self.total} trials")

    def __call__(self, row: dict[str, Any]) -> None:
        self.done += 1
        fitness = row.get("fitness")
        best = f", last fitness {fitness:.4f}" if isinstance(fitness, float) else ""
        get_run_logger().info("NAS trial %d/%d (%s)%s", self.done, self.total, row.get("state", "?"), best)
        update_progress_artifact(artifact_id=self.artifact_id, progress=min(100.0, 100.0 * self.done / self.total),
                                 description=f"NAS: {self.done} of {self.total} trials{best}")


def search(result: Any) -> None:
    create_table_artifact(table=summaries.leaderboard_table(result.trials_path), key=KEY_LEADERBOARD,
                          description=summaries.search_description(result))


def tune(result: Any, rows: list[dict[str, Any]]) -> None:
    create_markdown_artifact(summaries.tune_markdown(result, rows), key=KEY_TUNE, description="GAN tuning trials")


def run_summary(run_dir: Path, stages: dict[str, str], lines: list[str]) -> None:
    create_markdown_artifact(markdown=summaries.run_summary_markdown(run_dir, stages, lines), key=KEY_RUN,
                             description="Pipeline run summary")
