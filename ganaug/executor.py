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
    `submit` (a `concurrent.futures` executor) is wrapped.

    On a CUDA machine the local threads are capped at `gpu_slots` (`DEFAULT_TRIALS_PER_GPU` units per GPU):
    every unit of fanned-out work trains a network on the GPU. On a CPU the cap is none.
    """
    if executor is None:
        workers = capped_workers(workers, local_gpu_count(), DEFAULT_TRIALS_PER_GPU)
        return ThreadExecutor(workers) if workers > 1 else SerialExecutor()
    if hasattr(executor, "submit"):
        return FuturesExecutor(executor)
    return executor


# Units of fanned-out work (evaluation runs, NAS trials, tuning trials: each trains small networks) that share
# one GPU at once by default; `OrchestrationConfig.trials_per_gpu` sets it for the flows.
DEFAULT_TRIALS_PER_GPU = 4
GPU_RESOURCE = "GPU"  # the Dask worker resource a GPU unit of work asks for


def local_gpu_count() -> int:
    """CUDA GPUs this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_slots(gpus: int, trials_per_gpu: int) -> int | None:
    """How many units of work may train at once on `gpus` GPUs: `trials_per_gpu` each; None (no cap) without a GPU."""
    if trials_per_gpu < 1:
        raise ValueError(f"trials_per_gpu must be at least 1, got {trials_per_gpu}")
    return gpus * trials_per_gpu if gpus > 0 else None


def capped_workers(workers: int, gpus: int, trials_per_gpu: int) -> int:
    """`workers`, at most the GPUs' slots (`gpu_slots`) when there are GPUs."""
    slots = gpu_slots(gpus, trials_per_gpu)
    return workers if slots is None else max(1, min(workers, slots))


def unit_resources(gpus: int, trials_per_gpu: int) -> dict[str, float] | None:
    """The Dask resources one unit of work carries (`dask.annotate(resources=...)`): a 1/`trials_per_gpu` share of
    one GPU where the cluster has GPUs, so a worker declaring GPU=1 runs at most `trials_per_gpu` units at once;
    None (no annotation, any worker) without one."""
    return {GPU_RESOURCE: 1.0 / trials_per_gpu} if gpu_slots(gpus, trials_per_gpu) is not None else None


def worker_resources(gpus: int, workers: int) -> dict[str, float] | None:
    """The resources each of `workers` local Dask workers declares: the machine's GPUs shared out (GPU=1 for one
    worker per GPU); None without a GPU."""
    if gpus <= 0:
        return None
    return {GPU_RESOURCE: gpus / workers}
