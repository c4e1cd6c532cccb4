"""One way to fan out independent units of work: evaluation runs, NAS trials, tuning trials.

A fan-out hands `executor.map(fn, items)` the work and gets `fn(item)` back for every item, in the
order of `items`, whoever ran them and whenever they finished. Every unit of work seeds itself, so
the same seeds give the same results with any executor: `SerialExecutor` (one after another in this
thread), `ThreadExecutor` (the CLI's parallel runs), the flows' `TaskExecutor` (Prefect tasks on
threads or Dask), or a `concurrent.futures` executor (`as_executor` wraps it).

`name` says what kind of work it is and `labels` name the units (the flows make them Prefect task
and task run names). With `return_exceptions=True` a unit that raises gives its exception in place
of its result and the others go on (a failed trial is recorded, not fatal); otherwise the first
failure, in item order, is raised.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ganaug import faults


class Executor(Protocol):
    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        """`[fn(item) for item in items]`, however and wherever the calls run."""
        ...


@dataclass(frozen=True)
class Unpack:
    """`fn(*item)`: a unit of work whose item is a tuple of arguments (picklable when `fn` is)."""

    fn: Callable[..., Any]

    def __call__(self, args: tuple[Any, ...]) -> Any:
        return self.fn(*args)


def settle(get: Callable[[], Any], name: str, return_exceptions: bool) -> Any:
    """One unit's result from `get()`, or its exception when `return_exceptions`; passes the unit's fault point."""
    try:
        result = get()
    except Exception as err:
        if not return_exceptions:
            raise
        result = err
    faults.reached(name)
    return result


class SerialExecutor:
    """Every unit in this thread, one after another."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        return [settle(lambda item=item: fn(item), name, return_exceptions) for item in items]


class FuturesExecutor:
    """Units submitted to a `concurrent.futures`-style pool (anything with `submit(fn, item)` -> future)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        futures = [self.pool.submit(fn, item) for item in items]
        try:
            return [settle(future.result, name, return_exceptions) for future in futures]
        except BaseException:
            for future in futures:
                if isinstance(future, concurrent.futures.Future):
                    future.cancel()  # units not started yet; running ones finish on their own
            raise


class ThreadExecutor:
    """Up to `workers` units at once on threads of this process (torch releases the GIL while it computes)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "work",
            labels: Sequence[str] | None = None, return_exceptions: bool = False) -> list[Any]:
        workers = min(self.workers, len(items))
        if workers <= 1:
            return SerialExecutor().map(fn, items, name=name, return_exceptions=return_exceptions)
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix=f"ganaug-{name}") as pool:
            return FuturesExecutor(pool).map(fn, items, name=name, return_exceptions=return_exceptions)


def as_executor(executor: Executor | Any | None = None, workers: int = 1) -> Executor:
    """`executor` as an `Executor`: None is `workers` local threads (serial for one), and anything with
    `submit` (a `concurrent.futures` executor) is wrapped."""
    if executor is None:
        return ThreadExecutor(workers) if workers > 1 else SerialExecutor()
    if hasattr(executor, "submit"):
        return FuturesExecutor(executor)
    return executor
