"""`PipelineConfig` (the pipeline flow's parameters) and its orchestration settings.

Pure configuration (no Prefect import); `flows/` turns it into Prefect task runners and storage.
This module imports every stage's config (and so torch); the library never imports it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ganaug.data.config import IngestConfig
from ganaug.configbase import StrictModel
from ganaug.evaluate.config import EvaluateConfig
from ganaug.gan.config import GanConfig
from ganaug.generate import GenerateConfig
from ganaug.nas.config import SearchConfig

StageName = Literal["ingest", "train_gan", "generate", "evaluate", "search"]
STAGES: tuple[StageName, ...] = ("ingest", "train_gan", "generate", "evaluate", "search")
TaskRunnerChoice = Literal["threads", "dask"]


class OrchestrationConfig(StrictModel):
    """Where a pipeline run writes, where finished stages are cached, and how fan-out tasks run."""

    run_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
        description="Run folder name under runs_root; None = a new time-stamped id. Reusing an id resumes that run.",
    )
    runs_root: Path = Field(Path("data/runs"), description="Folder that holds run folders.")
    cache_dir: Path = Field(
        Path("data/cache/prefect"),
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
        None, min_length=1, description="Address of a running Dask scheduler (e.g. tcp://10.0.0.5:8786); None = start a local cluster."
    )
    dask_workers: int = Field(2, ge=1, le=256, description="Worker processes of the local Dask cluster (dask_address unset).")
    dask_threads_per_worker: int = Field(1, ge=1, le=64, description="Threads per worker of the local Dask cluster.")
    torch_threads: int | None = Field(
        None, ge=1, le=1024,
        description="torch threads of the flow process (torch.set_num_threads); None = torch's default. On small images "
                    "and shared CPUs one thread is often fastest.",
    )
    retries: int = Field(2, ge=0, le=10, description="Retries of a stage task after a transient I/O error (never after divergence or bad input).")
    retry_delay_seconds: float = Field(2.0, ge=0.0, le=600.0, description="Seconds between those retries.")

    @field_validator("refresh")
    @classmethod
    def _unique(cls, values: list[StageName]) -> list[StageName]:
        if len(set(values)) != len(values):
            raise ValueError("refresh lists a stage twice")
        return values

    @model_validator(mode="after")
    def _check_runner(self) -> OrchestrationConfig:
        if self.dask_address is not None and self.task_runner != "dask":
            raise ValueError("dask_address is set but task_runner is not 'dask'")
        return self


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
    "evaluate": {"seeds": 3, "metrics_max_samples": 1000},
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
