"""The `tune_gan` flow: `ganaug.tune.study.tune_gan` with every trial a task on the flow's task runner.

Trials are not cached: each one appends to the run history, and a tuning is run to learn something
new. Results do not depend on the runner (trials are told in the order they were asked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
from prefect import Task, flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from flows.config import OrchestrationConfig
from flows.runners import TaskExecutor
from flows.stages import recorded_dataset, run_folder, use_torch_threads
from ganaug.store import DatasetRef
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import TuneResult, tune_gan


@task(name="tune_trial", cache_policy=NO_CACHE, task_run_name="tune_trial {args[0]}")
def tune_trial_task(work: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return work(*args, **kwargs)


def _trial_task(_: Callable[..., Any]) -> Task[..., Any]:
    return tune_trial_task


def _markdown(result: TuneResult, rows: list[dict[str, Any]]) -> str:
    lines = ["| trial | state | start | steps | CAS on val | seconds |", "|---|---|---|---|---|---|"]
    for row in rows:
        utility = f"{row['rung_utility'][-1]:.4f}" if row["rung_utility"] else "-"
        steps = row["rung_steps"][-1] if row["rung_steps"] else "-"
        lines.append(f"| {row['number']} | {row['state']} | {'warm' if row['warm_from'] else 'sampled'} | {steps} | {utility} | {row['seconds']:.1f} |")
    return (f"# GAN tuning\n\nBest: trial {result.best_trial}, CAS on val {result.best_utility:.4f} "
            f"(`{result.best_config_path}`).\n\n" + "\n".join(lines))


@flow(name="tune_gan", task_runner=ThreadPoolTaskRunner(max_workers=8))
def tune_flow(config: TuneConfig = TuneConfig(), orchestration: OrchestrationConfig = OrchestrationConfig(),
              dataset: DatasetRef | None = None) -> TuneResult:
    """Tune the GAN on the run's dataset (warm-started from the run history); writes <run>/tune/."""
    use_torch_threads(orchestration)
    run = run_folder(orchestration, must_exist=dataset is None)
    logger = get_run_logger()

    def progress(row: dict[str, Any]) -> None:
        utility = f"{row['rung_utility'][-1]:.4f}" if row["rung_utility"] else "-"
        logger.info("tuning trial %d: %s, CAS on val %s", row["number"], row["state"], utility)

    with TaskExecutor(_trial_task) as executor:
        result = tune_gan(dataset or recorded_dataset(run), config, run.root, executor=executor, on_trial=progress)
    rows = pq.read_table(result.trials_path).to_pylist()  # a resumed study's earlier trials too
    create_markdown_artifact(_markdown(result, rows), key="ganaug-tune", description="GAN tuning trials")
    logger.info("tuning: best trial %d, CAS on val %.4f; config %s", result.best_trial, result.best_utility,
                result.best_config_path)
    return result
