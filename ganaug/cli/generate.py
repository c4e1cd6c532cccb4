"""`ganaug generate`: sample labelled synthetic images from a run's trained GAN."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunsRootOption, app, build_config, cli_errors, console, find_run_dir
from ganaug.errors import DataError

if TYPE_CHECKING:
    from ganaug.generate import GenerateConfig


def synthetic_table(dataset_path: Path, synthetic_path: Path) -> Table:
    """Real train and synthetic counts per class, with the mean quality score where one was stored."""
    from ganaug.store import SYNTHETIC_SCHEMA, read_dataset

    real = read_dataset(dataset_path)
    synthetic = read_dataset(synthetic_path, SYNTHETIC_SCHEMA)
    names = real.meta.class_names
    real_counts = np.bincount(real.labels[real.select(split="train", source="real")], minlength=len(names))
    syn_counts = np.bincount(synthetic.labels, minlength=len(names))
    scores = synthetic.extra_columns.get("quality_score", np.full(len(synthetic.labels), np.nan)).astype(float)
    kind = synthetic.meta.extra.get("quality_score")
    table = Table(title=f"{len(synthetic.labels)} synthetic images ({synthetic.meta.channels}x"
                        f"{synthetic.meta.height}x{synthetic.meta.width})")
    for column in ("class", "real train", "synthetic", "total") + ((f"mean {kind}",) if kind else ()):
        table.add_column(column, justify="left" if column == "class" else "right")
    for label, name in enumerate(names):
        cells = [name, str(real_counts[label]), str(syn_counts[label]), str(real_counts[label] + syn_counts[label])]
        if kind:
            class_scores = scores[synthetic.labels == label]
            cells.append(f"{np.nanmean(class_scores):.3f}" if np.isfinite(class_scores).any() else "")
        table.add_row(*cells)
    return table


@app.command("generate")
def generate_command(
    run_dir: Path = typer.Option(None, "--run-dir", help="Run folder with dataset.parquet and gan/ (default: newest under --runs-root)."),
    checkpoint: Path = typer.Option(None, "--checkpoint", help="Checkpoint file to sample, exactly this one (default: <run-dir>/gan/checkpoints/best.pt, the one chosen on validation; last.pt with `checkpoint: last` in --config)."),
    mode: str = typer.Option(None, "--mode", "-m", help="per_class, balance or ratio."),
    per_class: int = typer.Option(None, "--per-class", help="Images per class (mode per_class)."),
    target_per_class: int = typer.Option(None, "--target-per-class", help="Real + synthetic count per class (mode balance)."),
    ratio: float = typer.Option(None, "--ratio", help="Synthetic per real training image of each class (mode ratio)."),
    ema: bool = typer.Option(None, "--ema/--no-ema", help="Sample from the EMA generator (default) or the raw one."),
    average: str = typer.Option(None, "--average", help="none (default), weights or ensemble of the newest kept checkpoints."),
    average_checkpoints: int = typer.Option(None, "--average-checkpoints", help="How many kept checkpoints --average combines (default 3)."),
    min_confidence: float = typer.Option(None, "--min-confidence", help="Keep samples a real-trained classifier assigns to their class with at least this probability."),
    rank_by: str = typer.Option(None, "--rank-by", help="none, confidence or discriminator."),
    seed: int = typer.Option(None, "--seed", help="Seed of the noise."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or mps."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
) -> None:
    """Sample synthetic images into <run-dir>/synthetic.parquet."""
    from ganaug.generate import GenerateConfig
    from ganaug.gan.artifacts import GanPaths
    from ganaug.runner import run_generate
    from ganaug.runs import DATASET_FILE, RunFolder

    with cli_errors():
        overrides = {
            "mode": mode, "per_class": per_class, "target_per_class": target_per_class, "ratio": ratio,
            "use_ema": ema, "average": average, "average_checkpoints": average_checkpoints, "min_confidence": min_confidence, "rank_by": rank_by, "seed": seed, "device": device,
        }
        cfg = build_config(GenerateConfig, config, overrides)
        needs = {DATASET_FILE: "ganaug ingest"}
        if checkpoint is None:
            needs[GanPaths.under("").last_checkpoint.as_posix()] = "ganaug train"
        elif not checkpoint.is_file():
            raise DataError(f"--checkpoint {checkpoint} does not exist")
        else:
            cfg = exactly_the_named_checkpoint(cfg, checkpoint)
        run = RunFolder.open(find_run_dir(run_dir, runs_root, needs))
        ref = run_generate(run, cfg, checkpoint)
        console.print(synthetic_table(run.dataset, ref.file))
        console.print(sampled_line(ref.path))
        console.print(f"wrote [bold]{ref.path}[/] (content hash {ref.content_hash[:12]})")


def exactly_the_named_checkpoint(cfg: GenerateConfig, checkpoint: Path) -> GenerateConfig:
    """`cfg` that samples `checkpoint` itself: a named last.pt is not swapped for the best.pt beside it."""
    from ganaug.gan.checkpoint import LAST

    return cfg.model_copy(update={"checkpoint": "last"}) if checkpoint.name == LAST else cfg


def sampled_line(synthetic: str) -> str:
    """Which checkpoint file was sampled, at which step, and why."""
    from ganaug.generate import checkpoint_choice

    choice = checkpoint_choice(synthetic)
    return escape(f"sampled {choice.get('file')} (step {choice.get('step')}): {choice.get('rule')}")
