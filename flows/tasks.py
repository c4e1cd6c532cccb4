"""Prefect tasks: each one call of a `ganaug.runner` stage runner, its result cached under `ganaug.cache.stage_key`
(a rerun with the same inputs and config is a cache hit). Retries cover transient I/O only: a `GanAugError` (bad
input, divergence, corrupt checkpoint) fails at once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from flows.artifacts import GanProgress
from flows.retries import is_transient
from ganaug import faults
from ganaug.cache import stage_key
from ganaug.data.config import IngestConfig
from ganaug.evaluate import EvaluateConfig, EvaluationResult
from ganaug.gan import GanConfig, GanResult
from ganaug.generate import GenerateConfig
from ganaug.runner import run_evaluate, run_generate, run_ingest, run_train, run_tune
from ganaug.runs import RunFolder
from ganaug.store import DatasetRef, SyntheticRef
from ganaug.tune.config import TuneConfig
from ganaug.tune.storage import describe_reading
from ganaug.tune.study import TuneResult

def transient_only(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry condition: only I/O-type failures are retried; ganaug's own errors never are."""
    return is_transient(state.result(raise_on_failure=False))


class StagePolicy(CachePolicy):
    """Prefect cache policy: `stage_key` of the task's name and inputs."""

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        return stage_key(task_ctx.task.name, inputs)


STAGE_TASK_OPTIONS: dict[str, Any] = {"cache_policy": StagePolicy(), "persist_result": True, "result_serializer": "json",
                                      "retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": transient_only}


@task(name="ingest", **STAGE_TASK_OPTIONS)
def ingest_task(cfg: IngestConfig, out: Path) -> DatasetRef:
    """Read and split the labelled input into out/dataset.parquet."""
    return run_ingest(RunFolder.open(out), cfg)


@task(name="train_gan", **STAGE_TASK_OPTIONS)
def train_gan_task(dataset: DatasetRef, cfg: GanConfig, out: Path, cache_dir: Path) -> GanResult:
    """Train the GAN into out/gan/, resuming an interrupted training of the same inputs and config."""
    return run_train(RunFolder.open(out), cfg, dataset, callbacks=[GanProgress()], origin="flow", cache_dir=cache_dir,
                     announce=get_run_logger().info)


@task(name="generate", **STAGE_TASK_OPTIONS)
def generate_task(gan: GanResult, dataset: DatasetRef, cfg: GenerateConfig, out: Path) -> SyntheticRef:
    """Sample labelled synthetic images into out/synthetic.parquet."""
    return run_generate(RunFolder.open(out), cfg, Path(gan.checkpoint_path), dataset)


@task(name="evaluation_report", **STAGE_TASK_OPTIONS)
def evaluation_report_task(rows: list[dict[str, Any]], dataset: DatasetRef, synthetic: SyntheticRef | None,
                           cfg: EvaluateConfig, out: Path) -> EvaluationResult:
    """Generative metrics, evaluation.parquet, the plot and report.md from the finished protocol runs."""
    return run_evaluate(RunFolder.open(out), cfg, synthetic, dataset=dataset, rows=rows)


@task(name="tune", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2, retry_condition_fn=transient_only)
def tune_task(dataset: DatasetRef, cfg: TuneConfig, out: Path, executor: Any = None) -> TuneResult:
    """Tune the GAN into out/tune/, its trials units of `executor`. Not cached by Prefect: run.json says when a finished
    tuning is fresh (`run_tune`), and a retried one resumes its stored study (each trial appends to the run history)."""
    logger = get_run_logger()

    def progress(row: dict[str, Any]) -> None:
        logger.info("tuning trial %d: %s, %s", row["number"], row["state"], describe_reading(row))

    return run_tune(RunFolder.open(out), cfg, dataset, executor=executor, on_trial=progress, announce=logger.info)


@functools.cache
def work_task(name: str) -> Task[..., Any]:
    """The task of one unit of fanned-out work (`fn(item)`), named `name`; its run is named by its label.

    Each try passes the fault point `<name>:started` (`ganaug.faults`), where a test makes a unit fail inside its task.
    """

    def call(fn: Callable[[Any], Any], item: Any, label: str) -> Any:
        faults.reached(f"{name}:started")
        return fn(item)

    call.__name__ = call.__qualname__ = name  # names the task in the UI and its key on a Dask scheduler
    return task(call, name=name, task_run_name="{label}", cache_policy=StagePolicy(), persist_result=True,
                result_serializer="pickle")
