"""`ganaug train`: train the class-conditional GAN on a run's dataset.parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir


class ProgressBar:
    """GAN training callbacks that drive a rich progress bar (steps/s and losses)."""

    def __init__(self, progress: Progress, steps_per_image: float) -> None:
        self.progress = progress
        self.steps_per_image = steps_per_image
        self.task: Any = None

    def on_start(self, step: int, total_steps: int) -> None:
        self.task = self.progress.add_task("GAN", total=total_steps, completed=step, rate="", losses="")

    def on_metrics(self, step: int, metrics: dict[str, float]) -> None:
        rate = f"{metrics['images_per_second'] * self.steps_per_image:.1f} steps/s"
        losses = f"D {metrics['d_loss']:.3f}  G {metrics['g_loss']:.3f}"
        self.progress.update(self.task, completed=step, rate=rate, losses=losses)


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
        *((name, f"{metrics[name]:.4f}") for name in ("d_loss", "g_loss", "d_real", "d_fake", "d_val")
          if isinstance(metrics.get(name), float)),
        ("checkpoint id", result.checkpoint_id[:16]),
    ]
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
    checkpoint_every: int = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    compile_: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the networks."),
    amp: bool = typer.Option(None, "--amp/--no-amp", help="bf16 autocast on CUDA."),
    resume: bool = typer.Option(None, "--resume/--no-resume", help="Continue from gan/checkpoints/last.pt."),
    seed: int = typer.Option(None, "--seed", help="Seed of weights, noise and batches."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Train the conditional GAN; writes <run-dir>/gan/ (checkpoints, metrics.parquet, sample grids)."""
    from ganaug.gan import GanConfig, train_gan
    from ganaug.runs import RunFolder
    from ganaug.store import ArtifactRef, dataset_ref

    with cli_errors():
        overrides = {
            "steps": steps, "batch_size": batch_size, "loss": loss, "g_lr": g_lr, "d_lr": d_lr,
            "lr_schedule": lr_schedule, "conditioning": conditioning, "checkpoint_every": checkpoint_every,
            "device": device, "compile": compile_, "amp": amp, "resume": resume, "seed": seed,
        }
        cfg = build_config(GanConfig, config, overrides)
        folder = find_run_dir(run_dir, runs_root, {"dataset.parquet": "ganaug ingest"})
        dataset = dataset_ref(folder / "dataset.parquet")
        run = RunFolder.open(folder)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[losses]}"), TimeElapsedColumn())
        with run.stage("train_gan", config=cfg, inputs={"dataset": dataset}) as record:
            with Progress(*columns, console=console, transient=False) as progress:
                bar = ProgressBar(progress, 1.0 / (cfg.batch_size * cfg.d_steps_per_g))
                result = train_gan(dataset, cfg, folder, callbacks=[bar])
            record.outputs["checkpoint"] = ArtifactRef(path=result.checkpoint_path, content_hash=result.checkpoint_id,
                                                       kind="gan-checkpoint")
            record.notes["result"] = result.model_dump(mode="json")
        console.print(result_table(result))
        for what, path in (("checkpoint", result.checkpoint_path), ("metrics", result.metrics_path),
                           ("samples", result.grid_path)):
            console.print(f"wrote {what} [bold]{path}[/]", soft_wrap=True)
