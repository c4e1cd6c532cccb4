"""One flow per stage, and the stage steps the pipeline shares with them: a runner task, then its artifacts.

Every stage flow takes its pydantic config and the `OrchestrationConfig`; a stage that needs earlier
outputs reads them from the run folder's run.json (`orchestration.run_id` names the run) unless the
caller passes them, as the pipeline does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import Task, flow, get_run_logger

from flows import artifacts
from flows.naming import flow_run_name, open_named_run
from flows.retries import transient_retries
from flows.runners import TaskExecutor
from flows.tasks import evaluation_report_task, generate_task, ingest_task, train_gan_task
from ganaug.cache import result_intact, result_storage_path
from ganaug.data.config import IngestConfig
from ganaug.evaluate import EvaluateConfig, EvaluationResult, prepare_evaluation, run_all
from ganaug.gan import GanConfig, GanResult
from ganaug.generate import GenerateConfig
from ganaug.nas.config import SearchConfig
from ganaug.nas.results import SearchResult
from ganaug.pipeline import OrchestrationConfig, StageName
from ganaug.runner import (adopt_cached, record_cached, recorded_dataset, recorded_gan, run_search, stage_inputs,
                           stage_outcome, synthetic_input)
from ganaug.runs import RunFolder
from ganaug.store import DatasetRef, SyntheticRef


def run_cached_stage(stage_task: Task[..., Any], stage: StageName, run: RunFolder, settings: OrchestrationConfig,
                     publish: Callable[[Any, UUID | None], None], **params: Any) -> tuple[Any, str]:
    """Run a stage task with this run's result storage, forced refresh and retries, and `publish` its result's
    artifacts on its task run (a cache hit's too); a cache hit is recorded in run.json, or run again when its files
    are gone or changed. Returns the result and 'ran', 'cached' or 'reran: <why the cache was unusable>'."""
    stage_task = stage_task.with_options(result_storage=result_storage_path(settings.cache_dir),
                                         refresh_cache=True if stage in settings.refresh else None,
                                         retries=settings.retries, retry_delay_seconds=settings.retry_delay_seconds)
    state = stage_task(**params, return_state=True)
    result, outcome = state.result(), "cached" if state.name == "Cached" else "ran"
    if outcome == "cached":
        intact, why = result_intact(result)
        if intact:
            result = adopt_cached(run, result)  # its files linked into this run folder, which then stands alone
            inputs = stage_inputs(params["dataset"], params.get("synthetic")) if "dataset" in params else {}
            record_cached(run, stage, params["cfg"], inputs, result)
        else:
            get_run_logger().warning("%s: the cached result is unusable (%s); running the stage again", stage, why)
            state = stage_task.with_options(refresh_cache=True)(**params, return_state=True)
            result, outcome = state.result(), f"reran: {why}"
    publish(result, state.state_details.task_run_id)
    return result, outcome


def ingest_stage(config: IngestConfig, run: RunFolder, settings: OrchestrationConfig) -> tuple[DatasetRef, str]:
    return run_cached_stage(ingest_task, "ingest", run, settings, artifacts.dataset, cfg=config, out=run.root)


def train_gan_stage(dataset: DatasetRef, config: GanConfig, run: RunFolder,
                    settings: OrchestrationConfig) -> tuple[GanResult, str]:
    return run_cached_stage(train_gan_task, "train_gan", run, settings, artifacts.gan, dataset=dataset, cfg=config,
                            out=run.root, cache_dir=result_storage_path(settings.cache_dir))


def generate_stage(gan: GanResult, dataset: DatasetRef, config: GenerateConfig, run: RunFolder,
                   settings: OrchestrationConfig) -> tuple[SyntheticRef, str]:
    return run_cached_stage(generate_task, "generate", run, settings, artifacts.synthetic, gan=gan, dataset=dataset,
                            cfg=config, out=run.root)


def evaluate_stage(dataset: DatasetRef, synthetic: SyntheticRef | None, config: EvaluateConfig, run: RunFolder,
                   settings: OrchestrationConfig) -> tuple[EvaluationResult, str]:
    """The protocol runs as cached tasks, then the report from their rows (a cached task too)."""
    data, specs = prepare_evaluation(dataset, synthetic, config)  # bad input fails here, before any training
    executor = TaskExecutor(settings, "evaluate")
    rows = run_all(specs, data, config, executor)
    get_run_logger().info("evaluation: %d protocol runs, %d reused from the cache", len(rows),
                          executor.counts()["cached"])
    result, _ = run_cached_stage(evaluation_report_task, "evaluate", run, settings,
                                 lambda result, task_run_id: artifacts.evaluation(result, config.confidence, task_run_id),
                                 rows=rows,
                                 dataset=dataset, synthetic=synthetic, cfg=config, out=run.root)
    run.add_notes("evaluate", {"tasks": executor.counts()})
    return result, stage_outcome(run, "evaluate")


def search_stage(dataset: DatasetRef, synthetic: SyntheticRef | None, config: SearchConfig, run: RunFolder,
                 settings: OrchestrationConfig) -> tuple[SearchResult, str]:
    """The search, its trials and final retrainings cached tasks on the flow's task runner."""
    executor = TaskExecutor(settings, "search")
    result = run_search(run, config, synthetic, executor, callbacks=artifacts.SearchProgress(config.n_trials),
                        dataset=dataset)
    run.add_notes("search", {"tasks": executor.counts()})
    artifacts.search(result)
    return result, stage_outcome(run, "search")


@flow(name="ingest", flow_run_name=flow_run_name)
def ingest_flow(config: IngestConfig = IngestConfig(), orchestration: OrchestrationConfig = OrchestrationConfig()) -> DatasetRef:
    """Stage 1: read and split a labelled dataset into <run>/dataset.parquet."""
    with transient_retries(orchestration):
        run = open_named_run(orchestration)
        get_run_logger().info("run folder: %s", run.root)
        return ingest_stage(config, run, orchestration)[0]


@flow(name="train_gan", flow_run_name=flow_run_name)
def train_gan_flow(config: GanConfig = GanConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                   dataset: DatasetRef | None = None) -> GanResult:
    """Stage 2: train the conditional GAN on the run's dataset."""
    with transient_retries(orchestration):
        run = open_named_run(orchestration, must_exist=dataset is None)
        return train_gan_stage(dataset or recorded_dataset(run), config, run, orchestration)[0]


@flow(name="generate", flow_run_name=flow_run_name)
def generate_flow(config: GenerateConfig = GenerateConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                  dataset: DatasetRef | None = None, gan: GanResult | None = None) -> SyntheticRef:
    """Stage 3: sample labelled synthetic images from the run's GAN."""
    with transient_retries(orchestration):
        run = open_named_run(orchestration, must_exist=dataset is None or gan is None)
        return generate_stage(gan or recorded_gan(run), dataset or recorded_dataset(run), config, run, orchestration)[0]


@flow(name="evaluate", flow_run_name=flow_run_name)
def evaluate_flow(config: EvaluateConfig = EvaluateConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                  dataset: DatasetRef | None = None, synthetic: SyntheticRef | None = None) -> EvaluationResult:
    """Stage 4: classifiers on real vs augmented vs synthetic-only data, scored on the real test split."""
    with transient_retries(orchestration):
        run = open_named_run(orchestration, must_exist=dataset is None)
        dataset = dataset or recorded_dataset(run)
        synthetic = synthetic_input(run, dataset, synthetic, needed=config.needs_synthetic())
        return evaluate_stage(dataset, synthetic, config, run, orchestration)[0]


@flow(name="search", flow_run_name=flow_run_name)
def search_flow(config: SearchConfig = SearchConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                dataset: DatasetRef | None = None, synthetic: SyntheticRef | None = None) -> SearchResult:
    """Stage 5: architecture search over the classifier."""
    with transient_retries(orchestration):
        run = open_named_run(orchestration, must_exist=dataset is None)
        return search_stage(dataset or recorded_dataset(run), synthetic, config, run, orchestration)[0]
