"""Prefect artifacts of the stages' results (tables and markdown from `ganaug.report.summaries`) and progress.

Keys (ganaug-...) are stable so the UI's Artifacts page keeps each one's history across runs. A stage task's
artifacts belong to its task run (its page in the UI shows them, a cache hit's too) as well as to the flow run;
the pipeline's own run page repeats the evaluation table and the NAS leaderboard beside its run summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import (MarkdownArtifact, TableArtifact, create_markdown_artifact, create_progress_artifact,
                               update_progress_artifact)

from ganaug.pipeline import PipelineSummary
from ganaug.report import summaries
from ganaug.store import DatasetRef, SyntheticRef


def _table(table: list[dict[str, Any]], key: str, description: str, task_run_id: UUID | None = None) -> UUID:
    """A table artifact of this flow run, and of the task run `task_run_id` when given."""
    artifact = TableArtifact(table=table, key=key, description=description, task_run_id=task_run_id)
    return artifact.create(_sync=True).id  # type: ignore[call-arg]


def _markdown(markdown: str, key: str, description: str, task_run_id: UUID | None = None) -> UUID:
    """A markdown artifact of this flow run, and of the task run `task_run_id` when given."""
    artifact = MarkdownArtifact(markdown=markdown, key=key, description=description, task_run_id=task_run_id)
    return artifact.create(_sync=True).id  # type: ignore[call-arg]


def dataset(ref: DatasetRef, task_run_id: UUID | None = None) -> None:
    rows, description = summaries.dataset_table(ref)
    _table(rows, "ganaug-dataset", f"Dataset: {description}", task_run_id)


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


def gan(result: Any, task_run_id: UUID | None = None) -> None:
    """Final training metrics (a table of evenly spaced steps) and the final sample grid."""
    _table(summaries.gan_metrics_table(result.metrics_path), "ganaug-gan-metrics", summaries.gan_description(result),
           task_run_id)
    if Path(result.grid_path).is_file():
        _markdown(summaries.gan_samples_markdown(result.grid_path, result.steps, final=True), "ganaug-gan-samples",
                  f"Final generator samples (step {result.steps}, one row per class)", task_run_id)


def synthetic(ref: SyntheticRef, task_run_id: UUID | None = None) -> None:
    _table(summaries.synthetic_table(ref), "ganaug-synthetic", f"Synthetic images per class ({ref.rows} in all)",
           task_run_id)


def _evaluation_description(confidence: float) -> str:
    return f"Held-out test accuracy per protocol; paired differences with {confidence:.0%} confidence intervals"


def evaluation(result: Any, confidence: float, task_run_id: UUID | None = None) -> None:
    """The protocol table with paired-difference confidence intervals (table + markdown)."""
    _table(summaries.evaluation_table(result), "ganaug-evaluation", _evaluation_description(confidence), task_run_id)
    _markdown(summaries.evaluation_markdown(result, confidence), "ganaug-evaluation-report", "Evaluation report",
              task_run_id)


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


def _leaderboard(result: Any) -> list[dict[str, Any]]:
    """The leaderboard rows, each with its architecture in one readable line before the JSON."""
    from ganaug.nas.report import arch_summary

    rows = summaries.leaderboard_table(result.trials_path)
    return [{"architecture": arch_summary(row["arch_json"]) if row.get("arch_json") else None, **row} for row in rows]


def search(result: Any) -> None:
    """The leaderboard table and the search's report (its plots embedded)."""
    import pyarrow.parquet as pq

    from ganaug.nas.report import report_markdown

    _table(_leaderboard(result), "ganaug-nas-leaderboard", summaries.search_description(result))
    plots = [summaries.png_markdown(path, Path(path).stem) for path in result.plot_paths if Path(path).is_file()]
    report = report_markdown(result, pq.read_table(result.trials_path).to_pylist(), [])
    _markdown("\n".join([report, *plots]), "ganaug-nas-report", "Architecture search report")


def tune(result: Any, rows: list[dict[str, Any]]) -> None:
    create_markdown_artifact(summaries.tune_markdown(result, rows), key="ganaug-tune", description="GAN tuning trials")


def pipeline_results(evaluation: Any, search: Any, confidence: float) -> None:
    """The evaluation table and the NAS leaderboard on the pipeline's own run page (its subflows have them too)."""
    _table(summaries.evaluation_table(evaluation), "ganaug-pipeline-evaluation", _evaluation_description(confidence))
    _table(_leaderboard(search), "ganaug-pipeline-nas-leaderboard", summaries.search_description(search))


def subflow_artifacts(keys: list[str]) -> dict[str, UUID]:
    """The newest artifact of each key among the current flow run's subflow runs (absent keys are left out)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey,
                                                FlowRunFilter, FlowRunFilterParentFlowRunId)
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return {}
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id])))
        if not children:
            return {}
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys),
                                           flow_run_id=ArtifactFilterFlowRunId(any_=[child.id for child in children])),
            sort=ArtifactSort.CREATED_DESC)
    newest: dict[str, UUID] = {}
    for artifact in found:
        newest.setdefault(str(artifact.key), artifact.id)
    return newest


def artifact_link(text: str, artifact_id: UUID | None) -> str:
    """A markdown link to an artifact's page in the UI, or the plain text without one.

    The link is relative ('../../artifacts/artifact/<id>'): every page that shows an artifact (a flow run's, an
    artifact's, a key's) sits two levels below the UI's root, and the UI's markdown keeps only http(s), mailto and
    relative links (a file:// link is dropped, and a browser would not open one from a web page).
    """
    return text if artifact_id is None else f"[{text}](../../artifacts/artifact/{artifact_id})"


def run_summary_markdown(summary: PipelineSummary, reports: dict[str, UUID]) -> str:
    """The pipeline's closing summary: stages, verdicts, links to the reports, the best architecture."""
    from ganaug.nas.report import arch_summary

    table = ["| stage | outcome |", "|---|---|"] + [f"| {name} | {outcome} |" for name, outcome in summary.stages.items()]
    augmented = (f", {summary.test_accuracy_augmented:.4f} augmented" if summary.test_accuracy_augmented is not None
                 else "")
    arch_json = json.dumps(json.loads(summary.best_arch), indent=2)
    return "\n".join([
        f"# ganaug run `{summary.run_id}`", "", f"Run folder: `{summary.run_dir}`", "", *table, "",
        *[f"**{verdict}**\n" for verdict in summary.verdicts],
        f"- Evaluation report: {artifact_link(summary.report_path, reports.get('ganaug-evaluation-report'))}",
        f"- NAS report: {artifact_link(summary.nas_report_path, reports.get('ganaug-nas-report'))}", "",
        f"**Best architecture**: `{arch_summary(summary.best_arch)}` (conv blocks as channels, kernel, pooling; then "
        f"norm, activation, dropout, dense head): val accuracy {summary.best_val_accuracy:.4f}, test accuracy "
        f"{summary.test_accuracy_real:.4f} real{augmented}.", "",
        "<details><summary>Best architecture as JSON</summary>", "", "```json", arch_json, "```", "", "</details>",
    ])


def run_summary(summary: PipelineSummary) -> None:
    reports = subflow_artifacts(["ganaug-evaluation-report", "ganaug-nas-report"])
    _markdown(run_summary_markdown(summary, reports), "ganaug-run-summary", "Pipeline run summary")
