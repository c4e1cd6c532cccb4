"""The pipeline flow: ingest -> train GAN -> generate -> evaluate -> search, in one run folder."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows import artifacts
from flows.naming import flow_run_name, open_named_run
from flows.retries import transient_retries
from flows.runners import build_task_runner, shared_dask_cluster
from flows.stages import evaluate_flow, generate_stage, ingest_stage, search_flow, train_gan_stage
from ganaug.pipeline import PipelineConfig, PipelineSummary, search_config_after
from ganaug.runner import stage_outcome


@flow(name="pipeline", flow_run_name=flow_run_name, description="ingest -> train GAN -> generate -> evaluate -> search, in one run folder.")
def pipeline(config: PipelineConfig = PipelineConfig()) -> PipelineSummary:
    """The whole pipeline; finished stages with unchanged inputs and config are reused from the cache."""
    with transient_retries(config.orchestration):
        return run_pipeline(config)


def run_pipeline(config: PipelineConfig) -> PipelineSummary:
    """The pipeline flow's body: the stages in one run folder, then the run's summary artifacts."""
    logger = get_run_logger()
    run = open_named_run(config.orchestration)
    settings = config.orchestration.model_copy(update={"run_id": run.run_id})
    logger.info("run folder: %s", run.root.resolve())
    stages: dict[str, str] = {}
    with run.lock():  # one writer per run folder for the whole pipeline
        dataset, stages["ingest"] = ingest_stage(config.ingest, run, settings)
        gan, stages["train_gan"] = train_gan_stage(dataset, config.gan, run, settings)
        synthetic, stages["generate"] = generate_stage(gan, dataset, config.generate, run, settings)
        with shared_dask_cluster(settings) as address:
            runner = build_task_runner(settings, address)
            evaluation = evaluate_flow.with_options(task_runner=runner)(
                config=config.evaluate, orchestration=settings, dataset=dataset, synthetic=synthetic)
            stages["evaluate"] = stage_outcome(run, "evaluate")
            search = search_flow.with_options(task_runner=runner)(
                config=search_config_after(config.search, evaluation), orchestration=settings, dataset=dataset,
                synthetic=synthetic)
            stages["search"] = stage_outcome(run, "search")
    summary = PipelineSummary.of(run, stages, dataset, gan, synthetic, evaluation, search)
    artifacts.pipeline_results(evaluation, search, config.evaluate.confidence)
    artifacts.run_summary(summary)
    logger.info("pipeline finished: %s", ", ".join(f"{k} {v}" for k, v in stages.items()))
    return summary
