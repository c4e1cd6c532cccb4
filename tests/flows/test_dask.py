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
    search_cfg = cfg.search.model_copy(update={"n_trials": 2, "parallel": 2})
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
