"""`ganaug evaluate` (does the synthetic data help a classifier?) and `ganaug report`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir
from ganaug.errors import ConfigError, DataError
from ganaug.runs import DATASET_FILE, SYNTHETIC_FILE


def _split_list(option: str, value: str | None, kind: type) -> list[Any] | None:
    """'0.5,1' -> [0.5, 1.0]; None stays None (option not given)."""
    if value is None:
        return None
    try:
        return [kind(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        raise ConfigError(f"{option} expects a comma-separated list of {kind.__name__} values, got {value!r}") from None


def load_arch(path: Path) -> dict[str, Any]:
    """An architecture spec from JSON: an ArchSpec object, or NAS's best.json (its 'arch' key)."""
    if not path.is_file():
        raise ConfigError(f"--arch {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"--arch {path} is not valid JSON: {err}") from None
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        data = data["arch"]
    if not isinstance(data, dict):
        raise ConfigError(f"--arch {path} must hold an architecture object")
    return data


def protocol_table(result: Any) -> Table:
    """The summary rows of an `EvaluationResult` as a rich table."""
    from ganaug.report.markdown import format_interval, verdict
    from ganaug.evaluate.stats import protocol_label

    table = Table(title=f"test accuracy on the real test split ({result.runs} runs)")
    for column in ("train kept", "protocol", "real", "synthetic", "seeds", "accuracy", "macro-F1", "vs real", "verdict",
                   "vs classic", "verdict"):
        table.add_column(column, justify="left" if column in ("protocol", "verdict") else "right")
    for row in result.summary:
        table.add_row(
            f"{row.train_fraction:.0%}", protocol_label(row.protocol, row.ratio), f"{row.n_real:.0f}",
            f"{row.n_synthetic:.0f}", str(row.runs), f"{row.accuracy_mean:.4f} ± {row.accuracy_std:.4f}",
            f"{row.macro_f1_mean:.4f}", format_interval(row.vs_real), verdict(row.vs_real),
            format_interval(row.vs_classic), verdict(row.vs_classic),
        )
    return table


@app.command("evaluate")
def evaluate_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder with dataset.parquet (and synthetic.parquet); default: newest under --runs-root."),
    synthetic: Path = typer.Option(None, "--synthetic", help="Synthetic table (default: <run-dir>/synthetic.parquet)."),
    protocols: str = typer.Option(None, "--protocols", "-p", help="Comma-separated: real, classic, augmented, synthetic, weighted, pretrain, augmented_classic, soft, balanced, balanced_classic, oversampled, balanced_mixed, self_training, gan_classifier, gan_self_training and semi_augmented (these four need an unlabelled pool; added by default when the dataset has one)."),
    selection_metric: str = typer.Option(None, "--selection-metric", help="accuracy or macro_f1: what picks the best use of synthetic data on val."),
    ratios: str = typer.Option(None, "--ratios", help="Comma-separated synthetic-to-real ratios of the augmented protocol."),
    train_fractions: str = typer.Option(None, "--train-fractions", help="Comma-separated shares of the real train split kept (low-data regimes)."),
    seeds: int = typer.Option(None, "--seeds", help="Seeds per protocol, ratio and regime."),
    arch: Path = typer.Option(None, "--arch", help="Classifier architecture JSON (an ArchSpec, or nas/best.json)."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps per classifier (default: two per real training image, 1,000 to 20,000)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    generative_metrics: bool = typer.Option(None, "--generative-metrics/--no-generative-metrics", help="Compute FD, precision/recall, density/coverage, GAN-test."),
    parallel: int = typer.Option(None, "--parallel", "-j", help="Classifiers trained at once on threads (default: one per CPU core)."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Train classifiers on real / augmented / synthetic / classic data; write evaluation.parquet and report.md."""
    from ganaug.evaluate import EvaluateConfig

    with cli_errors():
        overrides: dict[str, Any] = {
            "protocols": _split_list("--protocols", protocols, str), "ratios": _split_list("--ratios", ratios, float),
            "train_fractions": _split_list("--train-fractions", train_fractions, float), "seeds": seeds,
            "arch": load_arch(arch) if arch is not None else None, "generative_metrics": generative_metrics,
            "workers": parallel, "selection_metric": selection_metric,
        }
        cfg = build_config(EvaluateConfig, config, overrides)
        train_overrides = {k: v for k, v in {"steps": steps, "device": device}.items() if v is not None}
        if train_overrides:
            cfg = build_config(EvaluateConfig, None, {**cfg.model_dump(), "train": {**cfg.train.model_dump(), **train_overrides}})
        if synthetic is not None and not synthetic.is_file():
            raise DataError(f"--synthetic {synthetic} does not exist")
        needs = {DATASET_FILE: "ganaug ingest"}
        if cfg.needs_synthetic() and synthetic is None:
            needs[SYNTHETIC_FILE] = "ganaug generate"
        folder = find_run_dir(run_dir, runs_root, needs)
        from ganaug.runner import run_evaluate
        from ganaug.runs import RunFolder

        result = run_evaluate(RunFolder.open(folder), cfg, synthetic)
        console.print(protocol_table(result))
        for selection in result.selections:
            console.print(f"[bold]{selection.statement}[/]")
        if result.generative_metrics:
            metrics = result.generative_metrics
            console.print("generative metrics: " + ", ".join(
                f"{key} {metrics[key]:.4f}" for key in ("frechet_distance", "precision", "recall", "density",
                                                         "coverage", "gan_test_accuracy",
                                                         "feature_classifier_val_accuracy") if key in metrics))
            if metrics.get("warning"):
                console.print(f"[yellow]warning:[/] {metrics['warning']}")
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
        console.print(f"wrote [bold]{result.evaluation_path}[/], [bold]{result.report_path}[/]")


@app.command("report")
def report_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder (default: newest under --runs-root with a dataset.parquet)."),
    runs_root: Path = RunsRootOption,
) -> None:
    """Rewrite <run-dir>/report.md from the artifacts the run folder holds."""
    from ganaug.report import write_report

    with cli_errors():
        from ganaug.runs import RunFolder

        folder = find_run_dir(run_dir, runs_root, {DATASET_FILE: "ganaug ingest"})
        with RunFolder.open(folder).lock():
            path = write_report(folder)
        console.print(f"wrote [bold]{path}[/]")
