"""NAS trials fanned out to a Dask LocalCluster of two worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def test_nas_trials_run_in_parallel_on_two_dask_workers(first_run: Any, tmp_path: Path) -> None:
    from distributed import Client, get_task_stream

    from flows import search_flow
    from flows.runners import build_task_runner, shared_dask_cluster
    from ganaug.runner import recorded_dataset, recorded_synthetic
    from ganaug.runs import RunFolder

    _, cfg = first_run
    first = RunFolder.open(Path(first_run[0].result().run_dir))
    settings = cfg.orchestration.model_copy(
        update={"run_id": "dask", "cache_dir": tmp_path / "cache", "task_runner": "dask", "dask_workers": 2}
    )
    # pruned trials on worker processes reach the study through its file (a study in memory stays in this process)
    search_cfg = cfg.search.model_copy(update={"n_trials": 2, "parallel": 2, "storage": "journal"})
    with shared_dask_cluster(settings) as address, Client(address) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        with get_task_stream(client) as stream:
            result = search_flow.with_options(task_runner=build_task_runner(settings, address))(
                search_cfg, settings, recorded_dataset(first), recorded_synthetic(first)
            )
    trial_workers = {item["worker"] for item in stream.data if str(item["key"]).startswith("nas_trial-")}
    assert len(trial_workers) == 2  # the two trials of the batch ran on different worker processes
    trials = pq.read_table(result.trials_path).to_pylist()
    assert [row["state"] for row in trials if row["role"] == "search"] == ["complete", "complete"]
    assert result.n_trials == 2 and 0.0 <= result.test_accuracy_real <= 1.0


def test_a_local_cluster_advertises_no_dashboard(tmp_path: Path) -> None:
    """The local cluster serves no dashboard (bokeh is not installed): no log line may point at one."""
    import logging

    from prefect import flow, task

    from flows.runners import build_task_runner, shared_dask_cluster
    from ganaug.pipeline import OrchestrationConfig

    @task
    def add_one(value: int) -> int:
        return value + 1

    @flow
    def one_task() -> int:
        return add_one.submit(1).result()

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(f"{record.name}: {record.getMessage()}")

    collect = Collect()
    loggers = [logging.getLogger(name) for name in ("prefect", "distributed")]  # prefect-dask's and the scheduler's
    settings = OrchestrationConfig(task_runner="dask", dask_workers=1, cache_dir=tmp_path / "cache")
    for logger in loggers:
        logger.addHandler(collect)
    try:
        with shared_dask_cluster(settings) as address:  # the pipeline's cluster
            assert one_task.with_options(task_runner=build_task_runner(settings, address))() == 2
        assert one_task.with_options(task_runner=build_task_runner(settings))() == 2  # a flow's own cluster
    finally:
        for logger in loggers:
            logger.removeHandler(collect)
    assert any("Scheduler at:" in message for message in collect.messages)  # the scheduler's start-up lines were seen
    assert [message for message in collect.messages if "dashboard" in message.lower()] == []
