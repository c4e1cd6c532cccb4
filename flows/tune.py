"""The `tune_gan` flow: the `tune` task (`ganaug.runner.run_tune`) with every trial a task on the flow's task runner.

Trials are not cached by Prefect: each one appends to the run history. The run folder's run.json says
when a finished tuning of the same dataset and config is fresh, and then it is reused. Results do not
depend on the runner (trials are told in the order they were asked).
"""

from __future__ import annotations

import pyarrow.parquet as pq
from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows import artifacts
from flows.naming import flow_run_name, open_named_run
from flows.runners import TaskExecutor
from flows.tasks import tune_task
from ganaug.pipeline import OrchestrationConfig
from ganaug.runner import recorded_dataset
from ganaug.store import DatasetRef
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import TuneResult


@flow(name="tune_gan", flow_run_name=flow_run_name, task_runner=ThreadPoolTaskRunner(max_workers=8))
def tune_flow(config: TuneConfig = TuneConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
              dataset: DatasetRef | None = None) -> TuneResult:
    """Tune the GAN on the run's dataset (warm-started from the run history); writes <run>/tune/."""
    run = open_named_run(orchestration, must_exist=dataset is None)
    logger = get_run_logger()
    result = tune_task(dataset or recorded_dataset(run), config, run.root, executor=TaskExecutor(orchestration, None))
    rows = pq.read_table(result.trials_path).to_pylist()  # a resumed study's earlier trials too
    artifacts.tune(result, rows)
    logger.info("tuning: best trial %d, utility %.4f; config %s", result.best_trial, result.best_utility,
                result.best_config_path)
    return result
