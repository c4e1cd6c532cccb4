"""The pipeline's configuration (`PipelineConfig`: the pipeline flow's parameters, a form in the UI), the
bookkeeping between its stages, and its closing summary. The flows chain the stages.

Pure library code (no Prefect import); `flows/` turns `OrchestrationConfig` into Prefect task
runners and storage. This module imports every stage's config (and so torch); the stages never import it.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ganaug.configbase import StrictModel
from ganaug.data.config import IngestConfig
from ganaug.evaluate.config import EvaluateConfig
from ganaug.executor import DEFAULT_TRIALS_PER_GPU, local_gpu_count, worker_resources
from ganaug.gan.config import GanConfig
from ganaug.generate import GenerateConfig
from ganaug.nas.config import SearchConfig
from ganaug.runs import DEFAULT_CACHE_DIR, DEFAULT_RUNS_ROOT

if TYPE_CHECKING:
    from ganaug.evaluate import EvaluationResult
    from ganaug.gan import GanResult
    from ganaug.nas.results import SearchResult
    from ganaug.runs import RunFolder
    from ganaug.store import DatasetRef, SyntheticRef

log = logging.getLogger(__name__)
StageName = Literal["ingest", "train_gan", "generate", "evaluate", "search"]
STAGES: tuple[StageName, ...] = ("ingest", "train_gan", "generate", "evaluate", "search")
TaskRunnerChoice = Literal["threads", "dask"]


class OrchestrationConfig(StrictModel):
    """Where a pipeline run writes, where finished stages are cached, and how fan-out tasks run."""

    run_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Run folder name under runs_root; None = a new time-stamped id. Reusing an id resumes that run.",
    )
    runs_root: Path = Field(DEFAULT_RUNS_ROOT, description="Folder that holds run folders.")
    cache_dir: Path = Field(
        DEFAULT_CACHE_DIR / "prefect",
        description="Where finished stages' results and cache records are persisted (Prefect result storage).",
    )
    refresh: list[StageName] = Field(
        default_factory=list, description="Stages to rerun even when a cached result exists (e.g. ['train_gan'])."
    )
    task_runner: TaskRunnerChoice = Field(
        "threads", description="How NAS trials and evaluation runs fan out: local threads or a Dask cluster."
    )
    max_workers: int = Field(
        2, ge=1, le=256,
        description="Concurrent tasks with task_runner='threads' (results are the same for any count: each run has its own generators).",
    )
    dask_address: str | None = Field(
        None, min_length=1,
        description="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786; implies task_runner 'dask'); None = with "
                    "task_runner 'dask', start a local cluster.",
    )
    dask_workers: int = Field(2, ge=1, le=256, description="Worker processes of the local Dask cluster (dask_address unset).")
    dask_threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per worker of the local Dask cluster.")
    torch_threads: int | None = Field(
        None, ge=1, le=1024,
        description="torch threads of the flow process (torch.set_num_threads); None = torch's default. On small images "
                    "and shared CPUs one thread is often fastest.",
    )
    retries: int = Field(2, ge=0, le=10, description="Retries of a stage task, a protocol run or NAS trial, and a flow after a transient I/O error (never after divergence or bad input).")
    retry_delay_seconds: float = Field(2.0, ge=0.0, le=600.0, description="Seconds between those retries.")
    trials_per_gpu: int = Field(
        DEFAULT_TRIALS_PER_GPU, ge=1, le=64,
        description="Units of fanned-out work (evaluation runs, NAS and tuning trials) training at once on one CUDA GPU: "
                    "local threads are capped at GPUs x this, Dask tasks ask for a 1/this share of a worker's GPU resource "
                    "(workers of your own cluster declare --resources GPU=1 per GPU), and the Prefect global concurrency "
                    "limit 'ganaug-gpu' holds every flow to it. No effect without a CUDA GPU.",
    )

    @field_validator("refresh")
    @classmethod
    def _unique(cls, values: list[StageName]) -> list[StageName]:
        if len(set(values)) != len(values):
            raise ValueError("refresh lists a stage twice")
        return values

    @model_validator(mode="before")
    @classmethod
    def _address_implies_dask(cls, data: Any) -> Any:
        """A Dask scheduler address without a task runner means the Dask runner (an explicit 'threads' is refused)."""
        if isinstance(data, dict) and data.get("dask_address") is not None and data.get("task_runner") is None:
            return {**data, "task_runner": "dask"}
        return data

    @model_validator(mode="after")
    def _check_runner(self) -> OrchestrationConfig:
        if self.dask_address is not None and self.task_runner != "dask":
            raise ValueError("dask_address is set but task_runner is 'threads'; drop one of them (an address implies "
                             "task_runner 'dask')")
        return self

    def local_cluster_kwargs(self) -> dict[str, Any]:
        """A Dask LocalCluster of `dask_workers` worker processes bound to 127.0.0.1, without the dashboard; on a CUDA
        machine each worker declares its share of the GPUs as resource GPU (`ganaug.executor.worker_resources`)."""
        kwargs = {"n_workers": self.dask_workers, "threads_per_worker": self.dask_threads_per_worker, "processes": True,
                  "host": "127.0.0.1", "dashboard_address": None}
        resources = worker_resources(local_gpu_count(), self.dask_workers)  # the machine's GPUs shared out; none on CPU
        return kwargs if resources is None else {**kwargs, "resources": resources}


class PipelineConfig(StrictModel):
    """One config per stage plus orchestration; the parameters of the pipeline flow (a form in the UI)."""

    ingest: IngestConfig = Field(default_factory=IngestConfig, description="Stage 1: read and split the labelled dataset.")
    gan: GanConfig = Field(default_factory=GanConfig, description="Stage 2: train the class-conditional GAN.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Stage 3: sample labelled synthetic images.")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Stage 4: real vs augmented vs synthetic-only classifiers.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="Stage 5: architecture search for the classifier.")
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig, description="Run folder, result cache and task runner."
    )


# The budget of `ganaug run` (and of the deployments) unless asked for the stages' own defaults:
# the whole pipeline on digits in a few minutes on 2 CPU cores. Config files and options go on top.
SMALL_BUDGET: dict[str, Any] = {
    "gan": {"steps": 3000, "checkpoint_every": 500, "grid_every": 1000, "metrics_every": 50},
    "evaluate": {"seeds": 3, "metrics_max_samples": 1000, "semi_supervised": {"steps": 2000},
                 "self_training": {"rounds": 2}},  # the pool protocols run only when the dataset has a pool
    "search": {"n_trials": 8, "steps": 400, "population_size": 4, "tournament_size": 2},
    "orchestration": {"torch_threads": 1},
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` applied; nested mappings merge, everything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def open_pipeline_run(settings: OrchestrationConfig, must_exist: bool = False) -> RunFolder:
    """Apply `settings.torch_threads` to this process and open the run folder `settings.run_id` (`open_run`)."""
    from ganaug.runner import open_run

    if settings.torch_threads is not None:
        import torch

        torch.set_num_threads(settings.torch_threads)  # fan-out tasks on threads share it; Dask workers use one
    return open_run(settings.runs_root, settings.run_id, must_exist)


def search_config_after(search: SearchConfig, evaluation: EvaluationResult) -> SearchConfig:
    """The search config following the evaluation's verdict on the full train split (the use of synthetic data)."""
    chosen = next((s for s in evaluation.selections if s.train_fraction >= 1.0), None)
    following = search.following(chosen.protocol if chosen else None, chosen.ratio if chosen else None,
                                 bool(chosen and chosen.helped))
    log.info("search trains on: %s%s", following.train_data,
             f" x{following.synthetic_ratio:g}" if following.synthetic_ratio else "")
    return following


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

    @classmethod
    def of(cls, run: RunFolder, stages: dict[str, str], dataset: DatasetRef, gan: GanResult, synthetic: SyntheticRef,
           evaluation: EvaluationResult, search: SearchResult) -> PipelineSummary:
        return cls(
            run_id=run.run_id, run_dir=str(run.root.resolve()), stages=stages, dataset_rows=dataset.rows,
            gan_steps=gan.steps, synthetic_rows=synthetic.rows,
            evaluation=[row.model_dump(mode="json") for row in evaluation.summary],
            verdicts=[selection.statement for selection in evaluation.selections], best_arch=search.best_arch.to_json(),
            best_val_accuracy=search.best_fitness, test_accuracy_real=search.test_accuracy_real,
            test_accuracy_augmented=search.test_accuracy_augmented, report_path=evaluation.report_path,
            nas_report_path=search.report_path,
        )
