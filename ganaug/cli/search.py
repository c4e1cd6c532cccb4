"""`ganaug search`: architecture search for the classifier on a run's (augmented) dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir
from ganaug.errors import ConfigError


def leaderboard_table(rows: list[dict[str, Any]], title: str) -> Table:
    from ganaug.nas.report import arch_summary, leaderboard

    table = Table(title=title)
    for column in ("rank", "trial", "val acc", "params", "steps", "seconds", "architecture"):
        table.add_column(column, justify="left" if column == "architecture" else "right")
    for rank, row in enumerate(leaderboard(rows), start=1):
        table.add_row(str(rank), str(row["number"]), f"{row['fitness']:.4f}", f"{row['parameter_count']:,}",
                      str(row["steps_run"]), f"{row['cost_seconds']:.1f}", arch_summary(row["arch_json"]))
    return table


@app.command("search")
def search_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder with dataset.parquet (default: newest under data/runs)."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Synthetic table (default: <run-dir>/synthetic.parquet if present)."),
    strategy: str = typer.Option(None, "--strategy", help="evolution, random, tpe, nsga2, or gan (a generator of genomes trained against the best trials)."),
    space: str = typer.Option(None, "--space", help="Named search space: default or wide (replaces the config file's space)."),
    gan_top_k: int = typer.Option(None, "--gan-top-k", help="gan: best trials the discriminator takes as real."),
    gan_retrain_every: int = typer.Option(None, "--gan-retrain-every", help="gan: finished trials between retrainings."),
    trials: int = typer.Option(None, "--trials", "-n", help="Search trials (total, counting a resumed study's)."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Trials evaluated at once, on threads."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps per full-fidelity trial (default: as in evaluation)."),
    mode: str = typer.Option(None, "--mode", help="full, proxy or proxy-then-verify."),
    objective: list[str] = typer.Option(None, "--objective", help="Extra objective to minimise: params or latency (repeatable)."),
    train_data: str = typer.Option(None, "--train-data", help="augmented (real + synthetic), real, or balanced (synthetic fills every class up to the largest)."),
    correlation_sample: int = typer.Option(None, "--correlation-sample", help="Architectures scored at both fidelities."),
    proxy: str = typer.Option(None, "--proxy", help="Proxy: training, synflow, naswot, grad_norm, params, flops, or auto (best measured Spearman)."),
    pruner: str = typer.Option(None, "--pruner", help="auto, median, halving or none."),
    storage: str = typer.Option(None, "--storage", help="journal, sqlite or memory."),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue a stored study (default) or start over."),
    seed: int = typer.Option(None, "--seed", help="Seed of the sampler and of trial training."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Search classifier architectures; writes <run-dir>/nas/ (trials, best.json, plots, report.md)."""
    from ganaug.executor import ThreadExecutor
    from ganaug.nas.config import SearchConfig
    from ganaug.runner import run_search
    from ganaug.runs import DATASET_FILE, RunFolder

    with cli_errors():
        overrides = {
            "strategy": strategy, "space": space, "gan_top_k": gan_top_k, "gan_retrain_every": gan_retrain_every,
            "n_trials": trials, "parallel": parallel, "steps": steps, "mode": mode,
            "objectives": objective or None, "train_data": train_data, "correlation_sample": correlation_sample,
            "proxy": proxy,
            "pruner": pruner, "storage": storage, "resume": resume, "seed": seed,
        }
        cfg = build_config(SearchConfig, config, overrides)
        if synthetic is not None and not synthetic.is_file():
            raise ConfigError(f"--synthetic {synthetic} does not exist")
        run = RunFolder.open(find_run_dir(run_dir, runs_root, {DATASET_FILE: "ganaug ingest"}))
        result = run_search(run, cfg, synthetic, executor=ThreadExecutor(cfg.parallel))
        _print_result(result)


def _print_result(result: Any) -> None:
    import pyarrow.parquet as pq

    rows = pq.read_table(result.trials_path).to_pylist()
    console.print(leaderboard_table(rows, f"{result.strategy} search: {result.n_trials} trials "
                                          f"({result.n_complete} complete, {result.n_pruned} pruned, {result.n_failed} failed)"))
    augmented = "n/a" if result.test_accuracy_augmented is None else f"{result.test_accuracy_augmented:.4f}"
    console.print(f"best trial {result.best_trial}: val {result.best_fitness:.4f}, test real "
                  f"{result.test_accuracy_real:.4f}, test augmented {augmented}")
    if result.proxy is not None:
        p = result.proxy
        console.print(f"proxy {p.proxy}: Spearman {p.spearman}, Kendall {p.kendall}, {p.cost_ratio}x cheaper ({p.sample_size} archs)")
    for path in [result.trials_path, result.best_path, result.report_path, *result.plot_paths]:
        console.print(f"wrote [bold]{path}[/]", soft_wrap=True)
