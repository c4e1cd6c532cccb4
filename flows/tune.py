"""The `tune_gan` flow: `ganaug.tune.study.tune_gan` with every trial a task on the flow's task runner.

Trials are not cached: each one appends to the run history, and a tuning is run to learn something
new. Results do not depend on the runner (trials are told in the order they were asked).
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows import artifacts
from flows.naming import flow_run_name, open_named_run
from flows.runners import TaskExecutor
from ganaug.pipeline import OrchestrationConfig
from ganaug.runner import recorded_dataset
from ganaug.store import DatasetRef
from ganaug.tune.config import TuneConfig
from ganaug.tune.storage import describe_reading
from ganaug.tune.study import TuneResult, tune_gan


@flow(name="tune_gan", flow_run_name=flow_run_name, task_runner=ThreadPoolTaskRunner(max_workers=8))
def tune_flow(config: TuneConfig = TuneConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
              dataset: DatasetRef | None = None) -> TuneResult:
    """Tune the GAN on the run's dataset (warm-started from the run history); writes <run>/tune/."""
    run = open_named_run(orchestration, must_exist=dataset is None)
    logger = get_run_logger()

    def progress(row: dict[str, Any]) -> None:
        logger.info("tuning trial %d: %s, %s", row["number"], row["state"], describe_reading(row))

    result = tune_gan(dataset or recorded_dataset(run), config, run.root, executor=TaskExecutor(orchestration, None),
                      on_trial=progress)
    rows = pq.read_table(result.trials_path).to_pylist()  # a resumed study's earlier trials too
    artifacts.tune(result, rows)
    logger.info("tuning: best trial %d, utility %.4f; config %s", result.best_trial, result.best_utility,
                result.best_config_path)
    return result
