"""How fanned-out work runs under Prefect: `TaskExecutor`, on the task runner `OrchestrationConfig` chooses.

Threads run locally by default. With `task_runner='dask'` the tasks go to the Dask scheduler at `dask_address`, or
to a local cluster of worker processes that the pipeline starts once for its evaluation and search stages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.tasks import work_task
from ganaug.cache import result_storage_path
from ganaug.executor import settle
from ganaug.pipeline import OrchestrationConfig, StageName


def build_task_runner(settings: OrchestrationConfig, dask_address: str | None = None) -> TaskRunner:
    """The task runner for the fan-out flows; `dask_address` overrides the configured address."""
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
    from prefect_dask import DaskTaskRunner

    address = dask_address or settings.dask_address
    if address is not None:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=settings.local_cluster_kwargs())


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

    with LocalCluster(**settings.local_cluster_kwargs()) as cluster:
        yield cluster.scheduler_address


class TaskExecutor:
    """The `ganaug.executor.Executor` of the flows: every unit of work a task run on the flow's task runner.

    A fan-out's `name` names its task (protocol_run, nas_trial, ...) and its labels the task runs.
    With a `stage`, a unit's result is cached under the key of its work and item (a rerun with the same
    inputs is a cache hit; `settings.refresh` naming the stage forces a rerun); without one nothing is cached.
    """

    def __init__(self, settings: OrchestrationConfig, stage: StageName | None) -> None:
        self.options: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
        if stage is not None:
            self.options = {"result_storage": result_storage_path(settings.cache_dir),
                            "refresh_cache": True if stage in settings.refresh else None}
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
