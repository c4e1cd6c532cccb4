"""How fanned-out work runs under Prefect: `TaskExecutor`, on the task runner `OrchestrationConfig` chooses.

Threads run locally by default. With `task_runner='dask'` the tasks go to the Dask scheduler at `dask_address`, or
to a local cluster of worker processes that the pipeline starts once for its evaluation and search stages."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.logs import route_dask_logs
from flows.tasks import transient_only, work_task
from ganaug.cache import result_storage_path
from ganaug.executor import settle
from ganaug.pipeline import OrchestrationConfig, StageName


def build_task_runner(settings: OrchestrationConfig, dask_address: str | None = None) -> TaskRunner:
    """The task runner for the fan-out flows; `dask_address` overrides the configured address."""
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
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

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        work = work_task(name).with_options(**self.options)
        futures = [work.submit(fn, item, label) for item, label in zip(items, labels or [name] * len(items), strict=True)]
        self.futures += futures
        return [settle(future.result, name, return_exceptions) for future in futures]

    def counts(self) -> dict[str, int]:
        """How many units were submitted, and how many of them were cache hits."""
        return {"submitted": len(self.futures),
                "cached": sum(future.state.name == "Cached" for future in self.futures)}
