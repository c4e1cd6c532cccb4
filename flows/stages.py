"""One flow per stage, and the stage runners the pipeline shares with them.

Every stage flow takes its pydantic config and the `OrchestrationConfig`; a stage that needs earlier
outputs reads them from the run folder's run.json (`orchestration.run_id` names the run) unless the
caller passes them, as the pipeline does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from flows.artifacts import (
    dataset_summary,
    evaluation_artifacts,
    gan_artifacts,
    search_artifacts,
    synthetic_summary,
)
from flows.caching import result_intact, result_storage_path
from flows.runners import TaskExecutor
from flows.tasks import (
    evaluation_report_task,
    fan_out_task,
    generate_task,
    ingest_task,
    protocol_data,
    protocol_run_task,
    train_gan_task,
)
from ganaug.data.config import IngestConfig
from ganaug.errors import ConfigError, DataError
from ganaug.classifier.train import cpu_threads
from ganaug.evaluate import EvaluateConfig, EvaluationResult, build_run_specs
from ganaug.evaluate.stage import RUN_THREADS
from ganaug.gan import GanConfig, GanResult
from ganaug.generate import GenerateConfig
from ganaug.nas.config import SearchConfig
from ganaug.nas.results import SearchResult
from flows.config import OrchestrationConfig, StageName
from ganaug.runner import record_result, synthetic_input
from ganaug.runs import RunFolder
from ganaug.store import ArtifactRef, DatasetRef, SyntheticRef

# ---------------------------------------------------------------- helpers shared with the pipeline


def run_folder(settings: OrchestrationConfig, must_exist: bool = False) -> RunFolder:
    """The run folder named by `settings.run_id` (a new id when unset and allowed)."""
    if must_exist:
        if settings.run_id is None:
            raise ConfigError("orchestration.run_id: name the run folder whose earlier stages this stage builds on")
        run = RunFolder.open(Path(settings.runs_root) / settings.run_id)
        if not run.manifest_path.is_file():
            raise DataError(f"run folder {run.root} has no run.json; run the earlier stages (or the pipeline) first")
        return run
    return RunFolder.create(settings.runs_root, settings.run_id)


def use_torch_threads(settings: OrchestrationConfig) -> None:
    """Apply `settings.torch_threads` to this process (tasks on threads share it; Dask workers use one)."""
    if settings.torch_threads is not None:
        import torch

        torch.set_num_threads(settings.torch_threads)


def configured(
    stage_task: Task[..., Any], settings: OrchestrationConfig, stage: StageName, retries: bool = True
) -> Task[..., Any]:
    """The task with this run's result storage, forced refresh and retry settings."""
    return stage_task.with_options(
        result_storage=result_storage_path(settings.cache_dir),
        refresh_cache=True if stage in settings.refresh else None,
        retries=settings.retries if retries else 0,
        retry_delay_seconds=settings.retry_delay_seconds,
    )


def run_cached_stage(stage_task: Task[..., Any], stage: StageName, run: RunFolder, config: Any,
                     inputs: dict[str, ArtifactRef], **params: Any) -> tuple[Any, str]:
    """Run a stage task; a cache hit is checked (its files must still be there) and recorded in run.json.

    Returns the result and what happened: 'ran', 'cached' or 'reran: <why the cache was unusable>'.
    """
    logger = get_run_logger()
    state = stage_task(**params, return_state=True)
    result = state.result()
    if state.name != "Cached":
        return result, "ran"
    intact, why = result_intact(result)
    if not intact:
        logger.warning("%s: the cached result is unusable (%s); running the stage again", stage, why)
        state = stage_task.with_options(refresh_cache=True)(**params, return_state=True)
        return state.result(), f"reran: {why}"
    with run.stage(stage, config=config, inputs=inputs) as record:
        record_result(record, result)
        record.notes["cached"] = True
    logger.info("%s: reused the cached result (same inputs and config)", stage)
    return result, "cached"


def _recorded(run: RunFolder, stage: str) -> dict[str, Any]:
    entry = run.read_manifest().get("stages", {}).get(stage)
    if entry and entry.get("status") == "stale":
        raise DataError(f"run folder {run.root}: the output of stage '{stage}' is stale ({entry.get('stale_reason')})")
    if not entry or entry.get("status") != "completed":
        raise DataError(f"run folder {run.root}: stage '{stage}' has not completed there (see {run.manifest_path})")
    return entry


def _add_notes(run: RunFolder, stage: str, notes: dict[str, Any]) -> None:
    manifest = run.read_manifest()
    manifest["stages"][stage].setdefault("notes", {}).update(notes)
    run.write_manifest(manifest)


def stage_outcome(run: RunFolder, stage: str) -> str:
    """'ran' or 'cached', with how many of its fan-out tasks were cache hits, from run.json."""
    entry = run.read_manifest().get("stages", {}).get(stage, {})
    notes = entry.get("notes", {})
    outcome = "cached" if notes.get("cached") else entry.get("status", "not run")
    outcome = "ran" if outcome == "completed" else outcome
    tasks = notes.get("tasks")
    if not tasks:
        return outcome
    if outcome == "ran" and tasks["submitted"] and tasks["cached"] == tasks["submitted"]:
        outcome = "cached"  # every unit of work came from the cache; only the bookkeeping ran
    return f"{outcome} ({tasks['cached']}/{tasks['submitted']} tasks cached)"


def recorded_dataset(run: RunFolder) -> DatasetRef:
    return DatasetRef.model_validate(_recorded(run, "ingest")["outputs"]["dataset"])


def recorded_gan(run: RunFolder) -> GanResult:
    return GanResult.model_validate(_recorded(run, "train_gan")["notes"]["result"])


def recorded_synthetic(run: RunFolder) -> SyntheticRef:
    return SyntheticRef.model_validate(_recorded(run, "generate")["outputs"]["synthetic"])


# ---------------------------------------------------------------- stage bodies (used by stage flows and the pipeline)


def ingest_stage(config: IngestConfig, run: RunFolder, settings: OrchestrationConfig) -> tuple[DatasetRef, str]:
    ref, outcome = run_cached_stage(configured(ingest_task, settings, "ingest"), "ingest", run, config, {},
                                    cfg=config, out=run.root)
    dataset_summary(ref)
    return ref, outcome


def train_gan_stage(dataset: DatasetRef, config: GanConfig, run: RunFolder,
                    settings: OrchestrationConfig) -> tuple[GanResult, str]:
    result, outcome = run_cached_stage(
        configured(train_gan_task, settings, "train_gan"), "train_gan", run, config, {"dataset": dataset},
        dataset=dataset, cfg=config, out=run.root, cache_dir=result_storage_path(settings.cache_dir),
    )
    gan_artifacts(result)
    return result, outcome


def generate_stage(gan: GanResult, dataset: DatasetRef, config: GenerateConfig, run: RunFolder,
                   settings: OrchestrationConfig) -> tuple[SyntheticRef, str]:
    ref, outcome = run_cached_stage(
        configured(generate_task, settings, "generate"), "generate", run, config, {"dataset": dataset},
        gan=gan, dataset=dataset, cfg=config, out=run.root,
    )
    synthetic_summary(ref)
    return ref, outcome


def evaluate_stage(dataset: DatasetRef, synthetic: SyntheticRef | None, config: EvaluateConfig, run: RunFolder,
                   settings: OrchestrationConfig) -> tuple[EvaluationResult, str]:
    """Fan the protocol runs out as tasks, then summarize them (each step cached on its own)."""
    logger = get_run_logger()
    protocol_data(dataset, synthetic, config.model_dump_json())  # bad input fails here, before any training
    specs = build_run_specs(config)
    runs = configured(protocol_run_task, settings, "evaluate", retries=False)
    with cpu_threads(RUN_THREADS):  # every run on one torch thread, as in the library's run_all
        futures = [runs.submit(spec, dataset, synthetic, config) for spec in specs]
        rows = [future.result() for future in futures]
    reused = sum(future.state.name == "Cached" for future in futures)
    logger.info("evaluation: %d protocol runs, %d reused from the cache", len(rows), reused)
    inputs = {"dataset": dataset} | ({"synthetic": synthetic} if synthetic is not None else {})
    result, outcome = run_cached_stage(
        configured(evaluation_report_task, settings, "evaluate"), "evaluate", run, config, inputs,
        rows=rows, dataset=dataset, synthetic=synthetic, cfg=config, out=run.root,
    )
    _add_notes(run, "evaluate", {"tasks": {"submitted": len(rows), "cached": reused}})
    evaluation_artifacts(result, config.confidence)
    return result, stage_outcome(run, "evaluate")


class _SearchProgress:
    """A progress artifact for the search: finished trials out of the budget."""

    def __init__(self, total: int) -> None:
        self.total, self.done = max(1, total), 0
        self.artifact_id = create_progress_artifact(progress=0.0, key="ganaug-nas-progress",
                                                    description=f"NAS: 0 of {self.total} trials")

    def __call__(self, row: dict[str, Any]) -> None:
        self.done += 1
        fitness = row.get("fitness")
        best = f", last fitness {fitness:.4f}" if isinstance(fitness, float) else ""
        get_run_logger().info("NAS trial %d/%d (%s)%s", self.done, self.total, row.get("state", "?"), best)
        update_progress_artifact(artifact_id=self.artifact_id, progress=min(100.0, 100.0 * self.done / self.total),
                                 description=f"NAS: {self.done} of {self.total} trials{best}")


def search_stage(dataset: DatasetRef, synthetic: SyntheticRef | None, config: SearchConfig, run: RunFolder,
                 settings: OrchestrationConfig) -> tuple[SearchResult, str]:
    """Run the search; every trial and final retraining is a cached task on the flow's task runner."""
    from ganaug.nas import search

    logger = get_run_logger()
    tasks: dict[str, Task[..., Any]] = {}

    def make_task(work: Any) -> Task[..., Any]:
        made = fan_out_task(work)
        if made.name not in tasks:
            tasks[made.name] = configured(made, settings, "search", retries=False)
        return tasks[made.name]

    inputs = {"dataset": dataset} | ({"synthetic": synthetic} if synthetic is not None else {})
    with TaskExecutor(make_task) as executor, run.stage("search", config=config, inputs=inputs) as record:
        result = search(dataset, synthetic, config, run.root, executor=executor, callbacks=_SearchProgress(config.n_trials))
        record_result(record, result)
        record.notes["tasks"] = {"submitted": executor.submitted, "cached": executor.cached()}
    logger.info("search: best trial %d, val accuracy %.4f, test accuracy %.4f (real)", result.best_trial,
                result.best_fitness, result.test_accuracy_real)
    search_artifacts(result)
    return result, stage_outcome(run, "search")


# ---------------------------------------------------------------- one flow per stage


@flow(name="ingest")
def ingest_flow(config: IngestConfig = IngestConfig(), orchestration: OrchestrationConfig = OrchestrationConfig()) -> DatasetRef:
    """Stage 1: read and split a labelled dataset into <run>/dataset.parquet."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration)
    get_run_logger().info("run folder: %s", run.root)
    return ingest_stage(config, run, orchestration)[0]


@flow(name="train_gan")
def train_gan_flow(config: GanConfig = GanConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                   dataset: DatasetRef | None = None) -> GanResult:
    """Stage 2: train the conditional GAN on the run's dataset."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration, must_exist=dataset is None)
    return train_gan_stage(dataset or recorded_dataset(run), config, run, orchestration)[0]


@flow(name="generate")
def generate_flow(config: GenerateConfig = GenerateConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                  dataset: DatasetRef | None = None, gan: GanResult | None = None) -> SyntheticRef:
    """Stage 3: sample labelled synthetic images from the run's GAN."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration, must_exist=dataset is None or gan is None)
    return generate_stage(gan or recorded_gan(run), dataset or recorded_dataset(run), config, run, orchestration)[0]


@flow(name="evaluate")
def evaluate_flow(config: EvaluateConfig = EvaluateConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                  dataset: DatasetRef | None = None, synthetic: SyntheticRef | None = None) -> EvaluationResult:
    """Stage 4: classifiers on real vs augmented vs synthetic-only data, scored on the real test split."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration, must_exist=dataset is None)
    dataset = dataset or recorded_dataset(run)
    if synthetic is None and (config.needs_synthetic() or config.generative_metrics):
        synthetic = synthetic_input(run, dataset, needed=config.needs_synthetic())
    return evaluate_stage(dataset, synthetic, config, run, orchestration)[0]


@flow(name="search")
def search_flow(config: SearchConfig = SearchConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
                dataset: DatasetRef | None = None, synthetic: SyntheticRef | None = None) -> SearchResult:
    """Stage 5: architecture search over the classifier."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration, must_exist=dataset is None)
    dataset = dataset or recorded_dataset(run)
    if synthetic is None and config.train_data in ("augmented", "balanced"):
        synthetic = synthetic_input(run, dataset)
    return search_stage(dataset, synthetic, config, run, orchestration)[0]
