"""Task runners for the fan-out stages, chosen by `OrchestrationConfig`, and an executor adapter.

Threads run locally by default. With `task_runner='dask'` the tasks go to the Dask scheduler at
`dask_address`, or to a local cluster of worker processes that the pipeline starts once and shares
between its evaluation and search stages.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from prefect import Task
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.config import OrchestrationConfig


def build_task_runner(settings: OrchestrationConfig, dask_address: str | None = None) -> TaskRunner:
    """The task runner for the fan-out flows; `dask_address` overrides the configured address."""
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.max_workers)
    from prefect_dask import DaskTaskRunner

    address = dask_address or settings.dask_address
    if address is not None:
        return DaskTaskRunner(address=address)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(settings))


def local_cluster_kwargs(settings: OrchestrationConfig) -> dict[str, Any]:
    """A LocalCluster of worker processes bound to 127.0.0.1, without the diagnostics dashboard."""
    return {
        "n_workers": settings.dask_workers,
        "threads_per_worker": settings.dask_threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": None,
    }


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

    with LocalCluster(**local_cluster_kwargs(settings)) as cluster:
        yield cluster.scheduler_address


class TaskExecutor:
    """A `concurrent.futures`-like executor whose submissions run as Prefect tasks of the current flow.

    The stage libraries take an `executor` with `.submit(fn, *args, **kwargs)`; handing them this
    makes every unit of work (a NAS trial, a final retraining) a task run on the flow's task runner.
    `make_task(fn)` returns a task that runs `fn(*args, **kwargs)` given `(fn, args, kwargs)`.
    """

    def __init__(self, make_task: Callable[[Callable[..., Any]], Task[..., Any]]) -> None:
        self._make_task = make_task
        self._waiters = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="ganaug-wait")
        self._futures: list[PrefectFuture[Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = self._make_task(fn).submit(fn, args, kwargs)
        self._futures.append(future)
        return self._waiters.submit(future.result)

    @property
    def submitted(self) -> int:
        return len(self._futures)

    def cached(self) -> int:
        """How many finished submissions were cache hits."""
        return sum(future.state.is_final() and future.state.name == "Cached" for future in self._futures)

    def map(self, fn: Callable[..., Any], *iterables: Any) -> Iterator[Any]:
        futures = [self.submit(fn, *args) for args in zip(*iterables, strict=True)]
        return (future.result() for future in futures)

    def shutdown(self, wait: bool = True) -> None:
        self._waiters.shutdown(wait=wait)

    def __enter__(self) -> TaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
