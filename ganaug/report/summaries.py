"""Tables and markdown summing up each stage's typed result: what the flows publish as Prefect artifacts.

Plain data (lists of row dicts, markdown strings) built from results and the files they point to;
`flows/artifacts.py` only hands them to Prefect. Images are embedded in markdown as
`data:image/png;base64` URIs, which the Prefect UI renders without any network access (checked by
`deployments/ui_check.py`).
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganaug.store import SYNTHETIC_SCHEMA, DatasetRef, SyntheticRef, read_dataset

if TYPE_CHECKING:
    from ganaug.evaluate import EvaluationResult
    from ganaug.gan import GanResult
    from ganaug.nas.results import SearchResult
    from ganaug.tune.study import TuneResult

MAX_IMAGE_BYTES = 2_000_000  # larger PNGs are linked by path instead of embedded


def png_markdown(path: str | Path, alt: str) -> str:
    """Markdown that shows a PNG inline (data URI), or names its path when it is too large."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) > MAX_IMAGE_BYTES:
        return f"*{alt}: {path} ({len(data) // 1024} KiB, too large to embed)*"
    return f"![{alt}](data:image/png;base64,{base64.b64encode(data).decode('ascii')})"


def clean(value: Any) -> Any:
    """Table cells: floats rounded, NaN as empty, everything else as is."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def dataset_table(ref: DatasetRef) -> tuple[list[dict[str, Any]], str]:
    """Class counts per split of a dataset (with an 'all' row) and a one-line description."""
    from ganaug.data.ingest import split_counts
    from ganaug.data.pool import describe_pool

    loaded = read_dataset(ref)
    meta = loaded.meta
    counts = split_counts(loaded.labels, loaded.splits, meta.class_names)
    rows = [{"class": name, **per_split, "total": sum(per_split.values())} for name, per_split in counts.items()]
    totals = {split: sum(row[split] for row in rows) for split in ("train", "val", "test")}
    rows.append({"class": "all", **totals, "total": sum(totals.values())})
    labelled = int(loaded.labelled().sum())
    description = (
        f"{meta.ingestion_source}: {labelled} images of {meta.channels}x{meta.height}x{meta.width}, "
        f"{meta.num_classes} classes; content hash {ref.content_hash[:12]}"
    )
    if "pool" in meta.extra:  # the pool's rows have no class: they are counted here, not in the rows
        description += f"; {describe_pool(meta.extra['pool'])}"
    return rows, description


def gan_samples_markdown(grid_path: str | Path, step: int, final: bool = False) -> str:
    title = f"GAN samples {'after' if final else 'at step'} {step}{' steps' if final else ''}"
    return f"# {title}\n\nOne row per class.\n\n{png_markdown(grid_path, 'final samples' if final else f'samples at step {step}')}"


def gan_metrics_table(metrics_path: str | Path, max_rows: int = 20) -> list[dict[str, Any]]:
    """Up to `max_rows` evenly spaced rows of the GAN's metrics.parquet (always the last one)."""
    import pandas as pd

    frame = pd.read_parquet(metrics_path)
    if len(frame) > max_rows:
        picks = sorted({round(i * (len(frame) - 1) / (max_rows - 1)) for i in range(max_rows)})
        frame = frame.iloc[picks]
    return [{k: clean(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def gan_description(result: GanResult) -> str:
    best = f"; best checkpoint on val: step {result.best_step}" if result.best_step is not None else ""
    if result.pseudo_labelled:
        best += f"; trained also on {result.pseudo_labelled} pool images labelled by a self-training teacher"
    return (f"GAN training metrics: {result.steps} steps on {result.device} in {result.seconds:.1f} s "
            f"({result.images_per_second:.0f} images/s), checkpoint {result.checkpoint_id[:12]}{best}")


def synthetic_table(ref: SyntheticRef) -> list[dict[str, Any]]:
    """Synthetic images per class (and mean quality score when filtering recorded one)."""
    loaded = read_dataset(ref, SYNTHETIC_SCHEMA)
    scores = loaded.extra_columns.get("quality_score")
    rows = []
    for code, name in enumerate(loaded.meta.class_names):
        mask = loaded.labels == code
        row: dict[str, Any] = {"class": name, "images": int(mask.sum())}
        if scores is not None and mask.any():
            values = [float(s) for s in scores[mask] if s is not None and not math.isnan(float(s))]
            row["mean_quality_score"] = clean(sum(values) / len(values)) if values else None
        rows.append(row)
    return rows


def evaluation_table(result: EvaluationResult) -> list[dict[str, Any]]:
    """One row per protocol: accuracy, and the paired differences with their confidence intervals."""
    rows = []
    for row in result.summary:
        entry = {"train_fraction": row.train_fraction, "protocol": row.protocol, "ratio": row.ratio, "seeds": row.runs,
                 "accuracy_mean": row.accuracy_mean, "accuracy_std": row.accuracy_std, "macro_f1_mean": row.macro_f1_mean}
        for name in ("vs_real", "vs_classic", "vs_self_training"):
            interval = getattr(row, name)
            entry[f"{name}_mean"] = interval.mean if interval is not None else None
            entry[f"{name}_ci_low"] = interval.low if interval is not None else None
            entry[f"{name}_ci_high"] = interval.high if interval is not None else None
        rows.append({k: clean(v) for k, v in entry.items()})
    return rows


def evaluation_markdown(result: EvaluationResult, confidence: float) -> str:
    """The protocol table, generative metrics, the accuracy plot and the notes."""
    from ganaug.evaluate.table import read_evaluation
    from ganaug.report.markdown import pool_markdown, summary_markdown

    parts = ["# Evaluation on the real test split", "", summary_markdown(result.summary, confidence)]
    parts += [f"\n**{selection.statement}**" for selection in result.selections]
    if Path(result.evaluation_path).is_file():
        rows, meta = read_evaluation(result.evaluation_path)
        pool = pool_markdown(rows, meta.get("pool"))
        parts += ["", "## The unlabelled pool", "", pool] if pool else []
    if result.generative_metrics:
        parts += ["", "## Generative metrics", "", "| metric | value |", "|---|---|"]
        parts += [f"| {k} | {_format_metric(v)} |" for k, v in result.generative_metrics.items()]
    if result.plot_path and Path(result.plot_path).is_file():
        parts += ["", png_markdown(result.plot_path, "accuracy per protocol")]
    for note in result.notes:
        parts += ["", f"> {note}"]
    return "\n".join(parts)


def _format_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format_metric(v)}" for k, v in value.items())
    return str(value)


def leaderboard_table(trials_path: str | Path, top: int = 15) -> list[dict[str, Any]]:
    """The best `top` finished trials of a search, best first."""
    import pandas as pd

    frame = pd.read_parquet(trials_path)
    finished = frame[frame["state"].isin(["complete", "pruned"]) & frame["fitness"].notna()]
    finished = finished.sort_values(["fitness", "parameter_count"], ascending=[False, True]).head(top)
    columns = [c for c in ("number", "state", "role", "fidelity", "fitness", "parameter_count", "latency_ms",
                           "cost_seconds", "steps_run", "pareto", "arch_json") if c in finished.columns]
    return [{k: clean(v) for k, v in row.items()} for row in finished[columns].to_dict(orient="records")]


def search_description(result: SearchResult) -> str:
    augmented = f" / {result.test_accuracy_augmented:.4f} (augmented)" if result.test_accuracy_augmented is not None else ""
    return (f"NAS leaderboard ({result.strategy}, {result.n_trials} trials): best val accuracy {result.best_fitness:.4f}, "
            f"test accuracy {result.test_accuracy_real:.4f} (real){augmented}")


def tune_markdown(result: TuneResult, rows: list[dict[str, Any]]) -> str:
    """The tuning trials (state, warm or sampled start, last rung's steps, utility, CAS on val, collapsed classes) and the best one."""
    from ganaug.tune.storage import last_reading  # optuna: only when a tuning is summarised

    lines = ["| trial | state | start | steps | utility | CAS on val | collapsed classes | seconds |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        steps = row["rung_steps"][-1] if row["rung_steps"] else "-"
        lines.append(f"| {row['number']} | {row['state']} | {'warm' if row['warm_from'] else 'sampled'} | {steps} "
                     f"| {' | '.join(last_reading(row))} | {row['seconds']:.1f} |")
    return (f"# GAN tuning\n\nBest: trial {result.best_trial}, utility {result.best_utility:.4f} "
            f"(`{result.best_config_path}`; utility = CAS on val x share of classes whose samples are not collapsed).\n\n"
            + "\n".join(lines))
