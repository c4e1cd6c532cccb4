"""The pipeline flow: ingest -> train GAN -> generate -> evaluate -> search, in one run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict

from flows.artifacts import run_summary_markdown
from flows.runners import build_task_runner, shared_dask_cluster
from flows.stages import (
    evaluate_flow,
    generate_stage,
    ingest_stage,
    run_folder,
    search_flow,
    stage_outcome,
    train_gan_stage,
    use_torch_threads,
)
from flows.config import OrchestrationConfig, PipelineConfig
from ganaug.runs import RunFolder


class PipelineSummary(BaseModel):
    """What a pipeline run did and where its results are."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    run_dir: str
    stages: dict[str, str]
    dataset_rows: int
    gan_steps: int
    synthetic_rows: int
    evaluation: list[dict[str, Any]]
    verdicts: list[str] = []
    best_arch: str
    best_val_accuracy: float
    test_accuracy_real: float
    test_accuracy_augmented: float | None
    report_path: str
    nas_report_path: str


@flow(name="pipeline", description="ingest -> train GAN -> generate -> evaluate -> search, in one run folder.")
def pipeline(config: PipelineConfig = PipelineConfig()) -> PipelineSummary:
    """The whole pipeline; finished stages with unchanged inputs and config are reused from the cache."""
    logger = get_run_logger()
    settings = config.orchestration
    use_torch_threads(settings)
    run = run_folder(settings)
    settings = settings.model_copy(update={"run_id": run.run_id})
    logger.info("run folder: %s", run.root.resolve())
    with run.lock():  # one writer per run folder for the whole pipeline
        return _pipeline_body(config, run, settings)


def _pipeline_body(config: PipelineConfig, run: RunFolder, settings: OrchestrationConfig) -> PipelineSummary:
    logger = get_run_logger()
    stages: dict[str, str] = {}
    dataset, stages["ingest"] = ingest_stage(config.ingest, run, settings)
    gan, stages["train_gan"] = train_gan_stage(dataset, config.gan, run, settings)
    synthetic, stages["generate"] = generate_stage(gan, dataset, config.generate, run, settings)
    with shared_dask_cluster(settings) as address:
        runner = build_task_runner(settings, address)
        evaluation = evaluate_flow.with_options(task_runner=runner)(
            config=config.evaluate, orchestration=settings, dataset=dataset, synthetic=synthetic
        )
        stages["evaluate"] = stage_outcome(run, "evaluate")
        chosen = next((s for s in evaluation.selections if s.train_fraction >= 1.0), None)
        search_config = config.search.following(chosen.protocol if chosen else None, chosen.ratio if chosen else None,
                                                bool(chosen and chosen.helped))
        logger.info("search trains on: %s%s", search_config.train_data,
                    f" x{search_config.synthetic_ratio:g}" if search_config.synthetic_ratio else "")
        search = search_flow.with_options(task_runner=runner)(
            config=search_config, orchestration=settings, dataset=dataset, synthetic=synthetic
        )
        stages["search"] = stage_outcome(run, "search")
    summary = PipelineSummary(
        run_id=run.run_id,
        run_dir=str(run.root.resolve()),
        stages=stages,
        dataset_rows=dataset.rows,
        gan_steps=gan.steps,
        synthetic_rows=synthetic.rows,
        evaluation=[row.model_dump(mode="json") for row in evaluation.summary],
        verdicts=[selection.statement for selection in evaluation.selections],
        best_arch=search.best_arch.to_json(),
        best_val_accuracy=search.best_fitness,
        test_accuracy_real=search.test_accuracy_real,
        test_accuracy_augmented=search.test_accuracy_augmented,
        report_path=evaluation.report_path,
        nas_report_path=search.report_path,
    )
    run_summary_markdown(
        Path(summary.run_dir), stages,
        [*[f"**{verdict}**" for verdict in summary.verdicts], "", f"Evaluation report: `{summary.report_path}`", "", f"NAS report: `{summary.nas_report_path}`",
         "", f"Best architecture: `{summary.best_arch}` (val accuracy {summary.best_val_accuracy:.4f}, "
         f"test accuracy {summary.test_accuracy_real:.4f} on real data)"],
    )
    logger.info("pipeline finished: %s", ", ".join(f"{k} {v}" for k, v in stages.items()))
    return summary
