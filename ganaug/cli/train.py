"""`ganaug train`: train the class-conditional GAN on a run's dataset.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir
from ganaug.errors import ConfigError


class ProgressBar:
    """GAN training callbacks that drive a rich progress bar (steps/s, losses, collapse monitor)."""

    def __init__(self, progress: Progress, steps_per_image: float) -> None:
        self.progress = progress
        self.steps_per_image = steps_per_image
        self.task: Any = None
        self.monitor = ""

    def on_start(self, step: int, total_steps: int) -> None:
        self.task = self.progress.add_task("GAN", total=total_steps, completed=step, rate="", losses="", monitor="")

    def on_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        rate = f"{metrics['images_per_second'] * self.steps_per_image:.1f} steps/s"
        losses = f"D {metrics['d_loss']:.3f}  G {metrics['g_loss']:.3f}"
        from ganaug.gan.monitor import reading_summary  # torch is loaded by now; `ganaug --help` stays fast

        reading = reading_summary(metrics)
        if reading:
            self.monitor = reading
            if metrics.get("collapsed"):
                self.progress.console.print(
                    f"[bold yellow]warning:[/] step {step}: class(es) {', '.join(metrics['collapsed'])} collapsed "
                    "(within-class spread below collapse_spread of the real val spread); see the samples_*.png grids",
                    highlight=False, soft_wrap=True)
        self.progress.update(self.task, completed=step, rate=rate, losses=losses, monitor=self.monitor)


def result_table(result: Any) -> Table:
    """Summary of a finished training."""
    table = Table(title="GAN training")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    metrics = result.final_metrics
    rows = [
        ("steps", f"{result.steps}" + (f" (resumed at {result.resumed_from})" if result.resumed_from else "")),
        ("device", result.device),
        ("seconds", f"{result.seconds:.1f}"),
        ("images/s", f"{result.images_per_second:.0f}"),
        *((name, f"{metrics[name]:.4f}") for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_val", "spread",
                                                      "min_class_spread", "recall", "min_class_recall", "val_frechet",
                                                      "val_nn_cas")
          if isinstance(metrics.get(name), float) and metrics[name] == metrics[name]),
        ("checkpoint id", result.checkpoint_id[:16]),
    ]
    if result.best_step is not None:
        score = "" if result.best_score is None else f", {result.selection_metric} {result.best_score:.4g}"
        rows.append(("best checkpoint", f"step {result.best_step}{score}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


@app.command("train")
def train_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder with dataset.parquet (default: newest under --runs-root)."),
    steps: int = typer.Option(None, "--steps", "-n", help="Generator steps in total."),
    batch_size: int = typer.Option(None, "--batch-size", help="Real images per discriminator step."),
    loss: str = typer.Option(None, "--loss", help="bce, hinge or wgan-gp."),
    g_lr: float = typer.Option(None, "--g-lr", help="Generator learning rate."),
    d_lr: float = typer.Option(None, "--d-lr", help="Discriminator learning rate."),
    lr_schedule: str = typer.Option(None, "--lr-schedule", help="constant, exponential or cosine."),
    conditioning: str = typer.Option(None, "--conditioning", help="projection or acgan."),
    g_width: int = typer.Option(None, "--g-width", help="Generator channels at full resolution (default: from the image size)."),
    d_width: int = typer.Option(None, "--d-width", help="Discriminator channels at full resolution (default: from the image size)."),
    monitor_every: int = typer.Option(None, "--monitor-every", help="Steps between collapse-monitor readings (best checkpoint on val)."),
    ema_statistics: str = typer.Option(None, "--ema-statistics", help="standing or copied batch-norm statistics of the EMA generator."),
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    compile_: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the networks."),
    capture: str = typer.Option(None, "--capture", help="graph: capture the whole training step (D and G passes, both Adam "
                                "steps, EMA) in one CUDA graph, eager with a logged reason where it cannot; auto: the same "
                                "(the config's `compile: graph|auto`). Not with --compile/--no-compile."),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA."),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue from gan/checkpoints/last.pt."),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, noise and batches."),
    schedule: str = typer.Option(None, "--schedule", help="fixed: the configured learning rates and schedule; learned: "
                                 "η0 and η1 learned from the run history for this dataset ($GANAUG_HISTORY, else "
                                 "data/history/gan_runs.parquet)."),
    pool: str = typer.Option(None, "--pool", help="auto, pseudo_label or off: also train on the unlabelled pool images that a "
                             "self-training teacher labels confidently (auto: when the dataset has a pool)."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Train the conditional GAN; writes <run-dir>/gan/ (checkpoints, metrics.parquet, sample grids)."""
    from ganaug.gan import GanConfig
    from ganaug.runner import run_train
    from ganaug.runs import DATASET_FILE, RunFolder

    with cli_errors():
        if capture is not None and compile_ is not None:
            raise ConfigError("--capture and --compile/--no-compile both set how the training step runs; give one")
        if capture is not None and capture not in ("graph", "auto"):
            raise ConfigError(f"--capture must be graph or auto, not {capture!r}")
        overrides = {
            "steps": steps, "batch_size": batch_size, "loss": loss, "g_lr": g_lr, "d_lr": d_lr,
            "lr_schedule": lr_schedule, "conditioning": conditioning, "checkpoint_every": checkpoint_every,
            "g_width": g_width, "d_width": d_width, "monitor_every": monitor_every, "ema_statistics": ema_statistics,
            "device": device, "compile": capture if capture is not None else compile_, "amp": amp, "resume": resume, "seed": seed, "schedule": schedule,
            "pool": pool,
        }
        cfg = build_config(GanConfig, config, overrides)
        run = RunFolder.open(find_run_dir(run_dir, runs_root, {DATASET_FILE: "ganaug ingest"}))
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[losses]}"),
                   TextColumn("{task.fields[monitor]}"), TimeElapsedColumn())
        def say(line: str) -> None:
            console.print(line, soft_wrap=True, highlight=False)

        with Progress(*columns, console=console, transient=False) as progress:
            bar = ProgressBar(progress, 1.0 / (cfg.batch_size * cfg.d_steps_per_g))
            result = run_train(run, cfg, callbacks=[bar], announce=say)
        console.print(result_table(result))
        for what, path in (("checkpoint", result.checkpoint_path), ("best checkpoint", result.best_checkpoint_path),
                           ("metrics", result.metrics_path), ("samples", result.grid_path)):
            console.print(f"wrote {what} [bold]{path}[/]", soft_wrap=True)
