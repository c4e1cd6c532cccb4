"""Units of fanned-out work sharing GPUs: the cap, Dask resources and the Prefect limit on a GPU; no-ops on a CPU."""

from __future__ import annotations

import dask
import pydantic
import pytest

import ganaug.executor as executor_module
import ganaug.pipeline as pipeline_module
from flows.runners import GpuPlan, GpuSlot, TaskExecutor, build_task_runner, dask_annotations, gpu_plan
from ganaug.executor import (
    SerialExecutor,
    ThreadExecutor,
    as_executor,
    capped_workers,
    gpu_slots,
    unit_resources,
    worker_resources,
)
from ganaug.pipeline import OrchestrationConfig


def test_the_decisions_for_gpus_and_for_none() -> None:
    assert gpu_slots(0, 4) is None and gpu_slots(1, 4) == 4 and gpu_slots(2, 3) == 6
    assert capped_workers(16, 0, 4) == 16 and capped_workers(16, 1, 4) == 4 and capped_workers(2, 1, 4) == 2
    assert unit_resources(0, 4) is None and unit_resources(1, 4) == {"GPU": 0.25}
    assert worker_resources(0, 2) is None and worker_resources(1, 1) == {"GPU": 1.0} and worker_resources(2, 4) == {"GPU": 0.5}
    with pytest.raises(ValueError, match="trials_per_gpu must be at least 1"):
        gpu_slots(1, 0)


def test_local_threads_are_capped_on_a_gpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor_module, "local_gpu_count", lambda: 0)
    assert isinstance(as_executor(None, 8), ThreadExecutor) and as_executor(None, 8).workers == 8
    monkeypatch.setattr(executor_module, "local_gpu_count", lambda: 1)
    assert as_executor(None, 8).workers == executor_module.DEFAULT_TRIALS_PER_GPU
    assert isinstance(as_executor(None, 1), SerialExecutor)


def test_local_dask_workers_declare_gpus_only_on_a_gpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = OrchestrationConfig(task_runner="dask", dask_workers=2)
    monkeypatch.setattr(pipeline_module, "local_gpu_count", lambda: 0)
    assert "resources" not in settings.local_cluster_kwargs()
    monkeypatch.setattr(pipeline_module, "local_gpu_count", lambda: 1)
    assert settings.local_cluster_kwargs()["resources"] == {"GPU": 0.5}


def test_the_flows_plan_carries_resources_with_dask_and_a_limit_on_a_gpu() -> None:
    threads, on_dask = OrchestrationConfig(), OrchestrationConfig(task_runner="dask", trials_per_gpu=2)
    assert gpu_plan(threads, 0) == gpu_plan(on_dask, 0) == GpuPlan(None, None)
    assert gpu_plan(threads, 1) == GpuPlan(None, 4)
    assert gpu_plan(on_dask, 2) == GpuPlan({"GPU": 0.5}, 4)
    with pytest.raises(pydantic.ValidationError, match="trials_per_gpu"):
        OrchestrationConfig(trials_per_gpu=0)


def test_on_a_cpu_the_task_executor_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.runners as runners

    monkeypatch.setattr(runners, "local_gpu_count", lambda: 0)
    assert TaskExecutor(OrchestrationConfig(task_runner="dask"), None).gpu == GpuPlan(None, None)
    assert build_task_runner(OrchestrationConfig(max_workers=8))._max_workers == 8
    monkeypatch.setattr(runners, "local_gpu_count", lambda: 1)
    assert build_task_runner(OrchestrationConfig(max_workers=8, trials_per_gpu=3))._max_workers == 3
    with dask_annotations(None):
        assert "resources" not in dask.get_annotations()
    with dask_annotations({"GPU": 0.25}):
        assert dask.get_annotations()["resources"] == {"GPU": 0.25}


def test_a_gpu_slot_runs_its_unit_holding_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import flows.runners as runners

    held: list[tuple[str, int, bool]] = []

    @contextlib.contextmanager
    def recording(name: str, occupy: int, strict: bool):  # noqa: ANN202
        held.append((name, occupy, strict))
        yield

    monkeypatch.setattr(runners, "concurrency", recording)
    assert GpuSlot(lambda x: x * 2)(21) == 42
    assert held == [("ganaug-gpu", 1, True)]
