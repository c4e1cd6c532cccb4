"""How fanned-out work runs under Prefect: `TaskExecutor`, on the task runner `OrchestrationConfig` chooses.

Threads run locally by default. With `task_runner='dask'` the tasks go to the Dask scheduler at `dask_address`, or
to a local cluster of worker processes that the pipeline starts once for its evaluation and search stages."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prefect import get_client
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.logs import route_dask_logs
from flows.tasks import transient_only, work_task
from ganaug.cache import result_storage_path
from ganaug.executor import capped_workers, gpu_slots, local_gpu_count, settle, unit_resources
from ganaug.pipeline import OrchestrationConfig, StageName


def build_task_runner(settings: OrchestrationConfig, dask_address: str | None = None) -> TaskRunner:
    """The task runner for the fan-out flows; `dask_address` overrides the configured address."""
    if settings.task_runner == "threads":  # on a CUDA machine at most trials_per_gpu units per GPU at once
        return ThreadPoolTaskRunner(max_workers=capped_workers(settings.max_workers, local_gpu_count(), settings.trials_per_gpu))
    from prefect_dask import DaskTaskRunner

    route_dask_logs()
    if settings.dask_address is not None:  # the user's cluster: its dashboard, if it serves one, is advertised
        return DaskTaskRunner(address=settings.dask_address)
    runner = local_dask_runner_class()
    if dask_address is not None:  # the pipeline's shared local cluster
        return runner(address=dask_address)
    return runner(cluster_kwargs=settings.local_cluster_kwargs())


class _NoDashboardLine(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "dashboard at:" not in record.getMessage()


@contextlib.contextmanager
def no_dashboard_advert() -> Iterator[None]:
    """Keep a local Dask cluster from advertising a dashboard: it serves none (bokeh is not installed).

    Its scheduler registers its plain HTTP endpoint (health, metrics) as 'dashboard' whatever `dashboard_address`
    says, logs a link to it, and prefect-dask logs the link again; the link answers 404. An empty link template
    keeps prefect-dask quiet, and a filter drops the scheduler's line.
    """
    import dask

    scheduler_log, quiet = logging.getLogger("distributed.scheduler"), _NoDashboardLine()
    scheduler_log.addFilter(quiet)
    try:
        with dask.config.set({"distributed.dashboard.link": ""}):
            yield
    finally:
        scheduler_log.removeFilter(quiet)


@functools.cache
def local_dask_runner_class() -> type[TaskRunner]:
    """`DaskTaskRunner` for a local cluster (its own or the pipeline's shared one): it advertises no dashboard."""
    from prefect_dask import DaskTaskRunner

    class LocalDaskTaskRunner(DaskTaskRunner):
        @property
        def client(self) -> Any:  # created on first use, with the cluster of a runner that has no address
            with no_dashboard_advert():
                return super().client

    return LocalDaskTaskRunner


@contextlib.contextmanager
def shared_dask_cluster(settings: OrchestrationConfig) -> Iterator[str | None]:
    """Yield the scheduler address the pipeline's fan-out flows should use (None for threads).

    With `task_runner='dask'` and no address, one LocalCluster serves every flow of the run
    instead of each flow starting its own.
    """
    if settings.task_runner != "dask" or settings.dask_address is not None:
        yield settings.dask_address
        return
    from distributed import LocalCluster

    route_dask_logs()
    with no_dashboard_advert(), LocalCluster(**settings.local_cluster_kwargs()) as cluster:
        yield cluster.scheduler_address


class TaskExecutor:
    """The `ganaug.executor.Executor` of the flows: every unit of work a task run on the flow's task runner.

    A fan-out's `name` names its task (protocol_run, nas_trial, ...) and its labels the task runs.
    With a `stage`, a unit's result is cached under the key of its work and item (a rerun with the same
    inputs is a cache hit; `settings.refresh` naming the stage forces a rerun) and retried `settings.retries` times
    after a transient error (`transient_only`); without one nothing is cached or retried (a tuning trial appends to the
    run history: it is not run twice).
    """

    def __init__(self, settings: OrchestrationConfig, stage: StageName | None) -> None:
        self.options: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
        if stage is not None:
            self.options = {"result_storage": result_storage_path(settings.cache_dir),
                            "refresh_cache": True if stage in settings.refresh else None,
                            "retries": settings.retries, "retry_delay_seconds": settings.retry_delay_seconds,
                            "retry_condition_fn": transient_only}
        self.futures: list[PrefectFuture[Any]] = []
        self.gpu = gpu_plan(settings, local_gpu_count())

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        work = work_task(name).with_options(**self.options)
        if self.gpu.limit is not None:  # every unit holds a slot of the GPU limit while it runs
            with get_client(sync_client=True) as client:
                client.upsert_global_concurrency_limit_by_name(GPU_LIMIT, self.gpu.limit)
            fn = GpuSlot(fn)
        with dask_annotations(self.gpu.resources):
            futures = [work.submit(fn, item, label) for item, label in zip(items, labels or [name] * len(items), strict=True)]
        self.futures += futures
        return [settle(future.result, name, return_exceptions) for future in futures]

    def counts(self) -> dict[str, int]:
        """How many units were submitted, and how many of them were cache hits."""
        return {"submitted": len(self.futures),
                "cached": sum(future.state.name == "Cached" for future in self.futures)}


GPU_LIMIT = "ganaug-gpu"  # the Prefect global concurrency limit every unit of fanned-out work holds a slot of on a GPU


@dataclass(frozen=True)
class GpuPlan:
    """How a flow's fanned-out units share the GPUs: the Dask resources each carries and the Prefect limit's slots
    (both None on a machine without a CUDA GPU: nothing changes there)."""

    resources: dict[str, float] | None
    limit: int | None


def gpu_plan(settings: OrchestrationConfig, gpus: int) -> GpuPlan:
    """The plan for `gpus` CUDA GPUs: with Dask a 1/trials_per_gpu share of a GPU per unit, and a limit of
    GPUs x trials_per_gpu units at once for any task runner."""
    resources = unit_resources(gpus, settings.trials_per_gpu) if settings.task_runner == "dask" else None
    return GpuPlan(resources, gpu_slots(gpus, settings.trials_per_gpu))


@contextlib.contextmanager
def dask_annotations(resources: dict[str, float] | None) -> Iterator[None]:
    """Submissions inside carry these Dask worker resources (`dask.annotate`); nothing without."""
    if resources is None:
        yield
        return
    import dask

    with dask.annotate(resources=resources):
        yield


@dataclass(frozen=True)
class GpuSlot:
    """`fn(item)` while holding one slot of the Prefect global concurrency limit `GPU_LIMIT`."""

    fn: Callable[[Any], Any]

    def __call__(self, item: Any) -> Any:
        with concurrency(GPU_LIMIT, occupy=1, strict=True):
            return self.fn(item)
