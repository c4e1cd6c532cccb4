"""`ganaug tune`: search GAN settings judged by downstream utility, warm-started from the run history."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ganaug.cli.app import (
    ConfigOption,
    RunsRootOption,
    app,
    cli_errors,
    console,
    find_run_dir,
)


def tune_config(config: Path | None, overrides: dict[str, Any], gan_config: Path | None, device: str | None) -> Any:
    """TuneConfig from an optional file, the given options, and the base GanConfig's file and device."""
    from ganaug.configbase import read_config_file, validate_config
    from ganaug.tune.config import TuneConfig

    data = read_config_file(config) if config is not None else {}
    data.update({key: value for key, value in overrides.items() if value is not None})
    base = dict(data.get("base") or {})
    if gan_config is not None:
        base.update(read_config_file(gan_config))
    if device is not None:
        base["device"] = device
    data["base"] = base
    return validate_config(TuneConfig, data, str(config) if config is not None else "options")


def trials_table(rows: list[dict[str, Any]]) -> Table:
    from ganaug.tune.storage import last_reading

    table = Table(title="GAN tuning (utility = CAS on val x share of classes not collapsed)")
    for column in ("trial", "state", "start", "steps", "utility", "CAS on val", "collapsed", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["number"]), row["state"], "warm" if row["warm_from"] else "sampled",
                      str(row["rung_steps"][-1]) if row["rung_steps"] else "-", *last_reading(row), f"{row['seconds']:.1f}")
    return table


@app.command("tune")
def tune_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder with dataset.parquet (default: newest under --runs-root)."),
    trials: int = typer.Option(None, "--trials", "-n", help="Trials in total, warm-start trials included (default 12)."),
    parallel: int = typer.Option(None, "--parallel", help="Trials trained at once in threads (default 1)."),
    min_steps: int = typer.Option(None, "--min-steps", help="GAN steps of the first rung (default 100)."),
    max_steps: int = typer.Option(None, "--max-steps", help="GAN steps of an unpruned trial: min-steps x reduction-factor^k (default 400)."),
    reduction_factor: int = typer.Option(None, "--reduction-factor", help="Rung spacing and share kept per rung (default 2)."),
    pruner: str = typer.Option(None, "--pruner", help="successive_halving (default), hyperband or none."),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue the study stored in <run-dir>/tune/study.db when there is one (default), or replace it."),
    cold: bool = typer.Option(False, "--cold", help="Do not seed the study with configs of similar past datasets."),
    cas_only: bool = typer.Option(False, "--cas-only", help="Judge trials by CAS on val alone (default: times the share of classes whose samples are not collapsed)."),
    history: Path = typer.Option(None, "--history", help="Run history file (default $GANAUG_HISTORY, else data/history/gan_runs.parquet)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the sampler, the GANs and the utility classifier."),
    device: str = typer.Option(None, "--device", help="GAN training device: auto, cpu, cuda or mps."),
    gan_config: Path = typer.Option(None, "--gan-config", help="YAML/JSON GanConfig the tuned options are set on."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Tune the GAN on a run's dataset; writes <run-dir>/tune/ and best_gan.yaml for `ganaug train -c`."""
    with cli_errors():
        overrides = {"n_trials": trials, "parallel": parallel, "min_steps": min_steps, "max_steps": max_steps,
                     "reduction_factor": reduction_factor, "pruner": pruner, "history": history, "seed": seed,
                     "warm_start": False if cold else None, "resume": resume,
                     "collapse_penalty": False if cas_only else None}
        cfg = tune_config(config, overrides, gan_config, device)
        from ganaug.runs import DATASET_FILE, RunFolder

        folder = find_run_dir(run_dir, runs_root, {DATASET_FILE: "ganaug ingest"})
        from ganaug.runner import run_tune
        from ganaug.tune.storage import describe_reading

        if logging.getLogger().level > logging.INFO:  # collapse warnings of poor trials are expected; the table tells
            logging.getLogger("ganaug.gan.stage").setLevel(logging.ERROR)
        def progress(row: dict[str, Any]) -> None:
            console.print(f"trial {row['number']}: {row['state']}, {describe_reading(row)} "
                          f"({'warm start' if row['warm_from'] else 'sampled'}, {row['seconds']:.1f} s)", highlight=False)

        result = run_tune(RunFolder.open(folder), cfg, on_trial=progress,  # cfg.parallel threads
                          announce=lambda line: console.print(line, highlight=False, soft_wrap=True))
    import pyarrow.parquet as pq

    if result.resumed_trials:
        console.print(f"resumed: {result.resumed_trials} trial(s) were done before", highlight=False)
    console.print(trials_table(pq.read_table(result.trials_path).to_pylist()))
    warm = f"{result.warm_trials} warm-start trial(s) from {', '.join(result.warm_from)}" if result.warm_trials else "no warm start"
    console.print(f"best: trial {result.best_trial}, utility {result.best_utility:.4f}; {result.pruned} pruned, "
                  f"{result.failed} failed, {warm}; {result.seconds:.0f} s", highlight=False)
    console.print(f"wrote [bold]{result.best_config_path}[/] and [bold]{result.pipeline_config_path}[/] "
                  f"(trials: {result.trials_path})", soft_wrap=True)
    console.print(f"use it: ganaug train --run-dir {folder} -c {result.best_config_path}", soft_wrap=True, highlight=False)
    console.print(f"        ganaug run -c {result.pipeline_config_path}   (its gan: section; add your ingest: section)",
                  soft_wrap=True, highlight=False)
