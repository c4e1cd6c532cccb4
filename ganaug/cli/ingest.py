"""`ganaug ingest`: read a labelled dataset (and a pool) into `dataset.parquet` with stratified splits."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ganaug.cli.app import ConfigOption, RunIdOption, RunsRootOption, app, build_config, cli_errors, console
from ganaug.data.config import IngestConfig
from ganaug.errors import ConfigError
from ganaug.runs import RunFolder


def _parse_imbalance(items: list[str] | None) -> dict[str, int] | None:
    if not items:
        return None
    parsed: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not count.strip().lstrip("-").isdigit():
            raise ConfigError(f"--imbalance expects CLASS=COUNT (e.g. 3=10), got {item!r}")
        parsed[name.strip()] = int(count)
    return parsed


def summary_table(dataset_path: Path) -> Table:
    """Class counts per split of a dataset table (the unlabelled pool's size in the title)."""
    from ganaug.data.ingest import split_counts
    from ganaug.store import read_dataset

    loaded = read_dataset(dataset_path)
    counts = split_counts(loaded.labels, loaded.splits, loaded.meta.class_names)
    meta = loaded.meta
    pool = int((~loaded.labelled()).sum())
    size = f"{len(loaded.labels) - pool} images" + (f" + {pool} unlabelled" if pool else "")
    table = Table(title=f"{meta.ingestion_source}: {size}, {meta.channels}x{meta.height}x{meta.width}")
    for column in ("class", "train", "val", "test", "total"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, per_split in counts.items():
        table.add_row(name, *(str(per_split[s]) for s in ("train", "val", "test")), str(sum(per_split.values())))
    totals = {s: sum(c[s] for c in counts.values()) for s in ("train", "val", "test")}
    table.add_row("all", *(str(totals[s]) for s in ("train", "val", "test")), str(sum(totals.values())), style="bold")
    return table


@app.command("ingest")
def ingest_command(
    source: str = typer.Option(None, "--source", "-s", help="digits (built-in), idx, folder, npz or table."),
    path: Path = typer.Option(None, "--path", "-p", help="Input file or folder (IDX images file, image folder, .npz, .parquet/.csv)."),
    labels: Path = typer.Option(None, "--labels", help="IDX labels file (source idx)."),
    label_column: str = typer.Option(None, "--label-column", help="Label column of a table."),
    pixels_column: str = typer.Option(None, "--pixels-column", help="List column with each image's pixels (table)."),
    height: int = typer.Option(None, "--height", help="Image height for flat pixel data."),
    width: int = typer.Option(None, "--width", help="Image width for flat pixel data."),
    channels: int = typer.Option(None, "--channels", help="1 (grayscale) or 3 (RGB); default: as found."),
    resize: tuple[int, int] | None = typer.Option(None, "--resize", help="Resize images to HEIGHT WIDTH (folder)."),
    pixel_max: float = typer.Option(None, "--pixel-max", help="Input value meaning full intensity (default: inferred)."),
    test_path: Path = typer.Option(None, "--test-path", help="A separate test set in the same format (IDX t10k images, a test/ image folder, ...): it becomes the test split."),
    test_labels: Path = typer.Option(None, "--test-labels", help="IDX labels file of the separate test set (source idx)."),
    split_column: str = typer.Option(None, "--split-column", help="Table column whose value 'test' marks the test split (table)."),
    val_fraction: float = typer.Option(None, "--val-fraction", help="Share of each class for validation."),
    test_fraction: float = typer.Option(None, "--test-fraction", help="Share of each class for the held-out test split."),
    train_fraction: float = typer.Option(None, "--train-fraction", help="Keep this share of each class's training samples."),
    train_per_class: int = typer.Option(None, "--train-per-class", help="Keep at most this many training samples per class."),
    imbalance: list[str] = typer.Option(None, "--imbalance", help="CLASS=COUNT: keep only COUNT training samples of CLASS (repeatable)."),
    unlabelled: Path = typer.Option(None, "--unlabelled", help="An unlabelled pool in the same format as --path (flat image folder, IDX images file, .npz with x only, table without labels)."),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="Keep K labelled training images per class; the rest of the training split goes to the pool, labels dropped."),
    seed: int = typer.Option(None, "--seed", help="Seed of the split and subsampling."),
    config: Path = ConfigOption,
    runs_root: Path = RunsRootOption,
    run_id: str = RunIdOption,
) -> None:
    """Ingest a labelled dataset (and an unlabelled pool) into data/runs/<run-id>/dataset.parquet."""
    from ganaug.data.pool import describe_pool
    from ganaug.runner import run_ingest
    from ganaug.store import read_dataset_meta

    with cli_errors():
        overrides = {
            "source": source, "path": path, "labels_path": labels, "label_column": label_column,
            "pixels_column": pixels_column, "height": height, "width": width, "channels": channels,
            "resize": resize, "pixel_max": pixel_max,
            "test_path": test_path, "test_labels_path": test_labels, "split_column": split_column,
            "val_fraction": val_fraction, "test_fraction": test_fraction, "train_fraction": train_fraction,
            "train_per_class": train_per_class, "imbalance": _parse_imbalance(imbalance),
            "unlabelled_path": unlabelled, "labels_per_class": labels_per_class, "seed": seed,
        }
        cfg = build_config(IngestConfig, config, overrides)
        ref = run_ingest(RunFolder.create(runs_root, run_id), cfg)
        console.print(summary_table(ref.file))
        pool = read_dataset_meta(ref.file).extra.get("pool")
        if pool is not None:
            console.print(describe_pool(pool), soft_wrap=True)
        console.print(f"wrote [bold]{ref.path}[/] (content hash {ref.content_hash[:12]})")
