"""`ganaug train`: train the class-conditional GAN on a run's dataset.parquet."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir


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


def learned_lines(learned: Any) -> list[str]:
    """The learned schedule and the past runs it was learned from, one line each."""
    datasets = len({o.dataset_hash for o in learned.observations})
    lines = [f"learned schedule from {len(learned.observations)} past run(s) on {datasets} dataset(s) in {learned.history} "
             "(weight = val utility):"]
    for o in learned.observations:
        run = f"{o.study} trial {o.trial}" if o.study is not None else o.origin
        lines.append(f"  {o.dataset_path}  {run}, {o.steps} steps, weight {o.utility:.3f}: "
                     f"η0 {math.exp(o.log_multiplier):.2f} x default, η1 {o.decay:.2f}")
    multiplier, decay = learned.predicted
    clipped = "" if (round(multiplier, 6), round(decay, 6)) == (round(learned.multiplier, 6), round(learned.lr_decay_rate, 6)) \
        else f" (predicted η0 {multiplier:.2f} x, η1 {decay:.2f}; clipped to the tuning ranges)"
    lines.append(f"this dataset, {learned.steps} steps: η0 {learned.multiplier:.2f} x default (g_lr {learned.g_lr:.3g}, "
                 f"d_lr {learned.d_lr:.3g}), {learned.lr_schedule} schedule, η1 {learned.lr_decay_rate:.2f}{clipped}; "
                 f"regularisation λ {learned.strength:g}")
    outside = learned.steps_outside()
    if outside is not None:
        lines.append(f"note: the runs it learned from trained {outside[0]}..{outside[1]} steps, this training {learned.steps}: "
                     "the schedule is extrapolated in length")
    return lines


def learned_config(cfg: Any, run: Any) -> Any:
    """The config with the learned schedule; a resumed training keeps the one it started with."""
    from ganaug.gan.artifacts import GanPaths
    from ganaug.tune.history import history_path
    from ganaug.tune.schedule import schedule_of_checkpoint, with_learned_schedule

    checkpoint = GanPaths.under(run.root).last_checkpoint
    if cfg.resume and checkpoint.is_file():
        cfg = schedule_of_checkpoint(cfg, checkpoint)
        console.print(f"resuming with the schedule this training started with ({checkpoint}): g_lr {cfg.g_lr:.3g}, "
                      f"d_lr {cfg.d_lr:.3g}, {cfg.lr_schedule}, η1 = {cfg.lr_decay_rate:.2f}", soft_wrap=True, highlight=False)
        return cfg
    cfg, learned = with_learned_schedule(cfg, run.dataset, history_path())
    for line in learned_lines(learned):
        console.print(line, soft_wrap=True, highlight=False)
    return cfg


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
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA."),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue from gan/checkpoints/last.pt."),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, noise and batches."),
    schedule: str = typer.Option("fixed", "--schedule", help="fixed: the configured learning rates and schedule; learned: "
                                 "η0 and η1 learned from the run history for this dataset ($GANAUG_HISTORY, else "
                                 "data/history/gan_runs.parquet)."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Train the conditional GAN; writes <run-dir>/gan/ (checkpoints, metrics.parquet, sample grids)."""
    from ganaug.errors import ConfigError
    from ganaug.gan import GanConfig
    from ganaug.runner import run_train
    from ganaug.runs import DATASET_FILE, RunFolder

    with cli_errors():
        overrides = {
            "steps": steps, "batch_size": batch_size, "loss": loss, "g_lr": g_lr, "d_lr": d_lr,
            "lr_schedule": lr_schedule, "conditioning": conditioning, "checkpoint_every": checkpoint_every,
            "g_width": g_width, "d_width": d_width, "monitor_every": monitor_every, "ema_statistics": ema_statistics,
            "device": device, "compile": compile_, "amp": amp, "resume": resume, "seed": seed,
        }
        cfg = build_config(GanConfig, config, overrides)
        if schedule not in ("fixed", "learned"):
            raise ConfigError(f"--schedule must be fixed or learned, not '{schedule}'")
        run = RunFolder.open(find_run_dir(run_dir, runs_root, {DATASET_FILE: "ganaug ingest"}))
        if schedule == "learned":
            cfg = learned_config(cfg, run)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[losses]}"),
                   TextColumn("{task.fields[monitor]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            bar = ProgressBar(progress, 1.0 / (cfg.batch_size * cfg.d_steps_per_g))
            result = run_train(run, cfg, callbacks=[bar])
        console.print(result_table(result))
        for what, path in (("checkpoint", result.checkpoint_path), ("best checkpoint", result.best_checkpoint_path),
                           ("metrics", result.metrics_path), ("samples", result.grid_path)):
            console.print(f"wrote {what} [bold]{path}[/]", soft_wrap=True)
