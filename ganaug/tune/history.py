"""Run history: one Parquet row per GAN training (dataset meta-features, config, curves, val quality).

Every GAN training appends a record (`ganaug train`, the flows, every tuning trial), so that later
tunings can start from what worked on similar data (`ganaug.tune.warmstart`). The file is small
(one row per training) and rewritten whole on every append: read and validated, the new row added,
written to a temporary file and renamed into place, under a lock. A file that cannot be read, or
that is not a ganaug history, stops the append with an error naming it and is left untouched.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ganaug.errors import DataError
from ganaug.runs import DEFAULT_HISTORY
from ganaug.store import LoadedDataset, write_table

if TYPE_CHECKING:  # the GAN stage imports this module; importing ganaug.gan here would be circular
    from ganaug.gan.config import GanConfig

HISTORY_ENV = "GANAUG_HISTORY"  # a path, or "off" to record nothing
HISTORY_KEY = b"ganaug-history"
HISTORY_FORMAT = "ganaug-gan-history"
HISTORY_VERSION = 2
# Columns each version added, filled with nulls when an older file is read (it is rewritten at the next append).
ADDED_COLUMNS = {2: ("spread", "collapsed_classes")}
EMBEDDING_SIDE = 4  # the fixed embedding: per-pixel mean and std of images pooled to 4x4 grayscale
STATISTICS_IMAGES = 10_000  # train images (at most) behind the pixel statistics and the embedding

HISTORY_SCHEMA = pa.schema([
    pa.field("recorded_at", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),  # train | flow | tune
    pa.field("dataset_hash", pa.string(), nullable=False),
    pa.field("dataset_path", pa.string(), nullable=False),
    pa.field("images", pa.int64(), nullable=False),
    pa.field("classes", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("channels", pa.int32(), nullable=False),
    pa.field("class_counts", pa.list_(pa.int64()), nullable=False),
    pa.field("pixel_mean", pa.float64(), nullable=False),
    pa.field("pixel_std", pa.float64(), nullable=False),
    pa.field("embedding", pa.list_(pa.float32()), nullable=False),
    pa.field("gan_config", pa.string(), nullable=False),  # GanConfig JSON, every field
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("steps", pa.int64(), nullable=False),
    pa.field("pruned", pa.bool_(), nullable=False),
    pa.field("d_loss_final", pa.float64()),
    pa.field("g_loss_final", pa.float64()),
    pa.field("d_loss_mean", pa.float64()),  # mean over the second half of the metrics rows
    pa.field("g_loss_mean", pa.float64()),
    pa.field("monitor_steps", pa.list_(pa.int64()), nullable=False),
    pa.field("val_nn_cas_curve", pa.list_(pa.float64()), nullable=False),
    pa.field("val_frechet", pa.float64()),
    pa.field("recall", pa.float64()),
    pa.field("val_nn_cas", pa.float64()),
    pa.field("spread", pa.float64()),  # last monitor reading: generated / real within-class spread, mean over classes
    pa.field("collapsed_classes", pa.float64()),  # last monitor reading: classes below the collapse threshold
    pa.field("best_step", pa.int64()),
    pa.field("cas_val", pa.float64()),  # classifier trained on samples, accuracy on real val (tuning)
    pa.field("study", pa.string()),
    pa.field("trial", pa.int64()),
    pa.field("seconds", pa.float64(), nullable=False),
    pa.field("device", pa.string(), nullable=False),
], metadata={HISTORY_KEY: json.dumps({"format": HISTORY_FORMAT, "version": HISTORY_VERSION}).encode()})

_LOCK = threading.Lock()  # threads of one process (parallel tuning trials); fcntl covers processes


def history_path(explicit: str | Path | None = None) -> Path | None:
    """Where records go: `explicit`, else $GANAUG_HISTORY ("off" = nowhere), else data/history/gan_runs.parquet."""
    if explicit is not None:
        return Path(explicit)
    value = os.environ.get(HISTORY_ENV)
    if value is None or value == "":
        return DEFAULT_HISTORY
    return None if value.lower() == "off" else Path(value)


@dataclass(frozen=True)
class DatasetFeatures:
    """Meta-features of a dataset's real train split: what warm start compares datasets by."""

    dataset_hash: str
    dataset_path: str
    images: int
    classes: int
    height: int
    width: int
    channels: int
    class_counts: tuple[int, ...]
    pixel_mean: float
    pixel_std: float
    embedding: tuple[float, ...]

    def row(self) -> dict[str, Any]:
        return {"dataset_hash": self.dataset_hash, "dataset_path": self.dataset_path, "images": self.images,
                "classes": self.classes, "height": self.height, "width": self.width, "channels": self.channels,
                "class_counts": list(self.class_counts), "pixel_mean": self.pixel_mean, "pixel_std": self.pixel_std,
                "embedding": list(self.embedding)}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DatasetFeatures:
        return cls(str(row["dataset_hash"]), str(row["dataset_path"]), int(row["images"]), int(row["classes"]),
                   int(row["height"]), int(row["width"]), int(row["channels"]), tuple(int(c) for c in row["class_counts"]),
                   float(row["pixel_mean"]), float(row["pixel_std"]), tuple(float(v) for v in row["embedding"]))


def dataset_features(loaded: LoadedDataset) -> DatasetFeatures:
    """Size, shape, class balance, pixel statistics and a fixed 32-number embedding of the real train images."""
    mask = loaded.select(split="train", source="real")
    labels = loaded.labels[mask]
    meta = loaded.meta
    counts = np.bincount(labels, minlength=meta.num_classes) if len(labels) else np.zeros(meta.num_classes, dtype=np.int64)
    rows = np.flatnonzero(mask)
    if len(rows) > STATISTICS_IMAGES:  # an evenly spaced, fixed subset keeps large datasets cheap
        rows = rows[np.linspace(0, len(rows) - 1, STATISTICS_IMAGES).round().astype(np.int64)]
    scaled = torch.from_numpy(np.asarray(loaded.images[rows], dtype=np.float32) / 255.0)  # (N, C, H, W)
    if len(scaled):
        pooled = torch.nn.functional.adaptive_avg_pool2d(scaled.mean(dim=1, keepdim=True), EMBEDDING_SIDE).flatten(1)
        embedding = torch.cat([pooled.mean(0), pooled.std(0, unbiased=False)]).tolist()
        pixel_mean, pixel_std = float(scaled.mean()), float(scaled.std(unbiased=False))
    else:
        embedding, pixel_mean, pixel_std = [0.0] * (2 * EMBEDDING_SIDE**2), 0.0, 0.0
    return DatasetFeatures(loaded.content_hash, str(loaded.path), len(labels), meta.num_classes, meta.height,
                           meta.width, meta.channels, tuple(int(c) for c in counts), round(pixel_mean, 6),
                           round(pixel_std, 6), tuple(round(v, 6) for v in embedding))


def curve_summary(metrics_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Final and late-mean losses, and the collapse monitor's readings (val_nn_cas per monitor step, last quality)."""
    def finite(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    late = metrics_rows[len(metrics_rows) // 2:]
    monitored = [row for row in metrics_rows if finite(row.get("val_nn_cas")) is not None]
    last = monitored[-1] if monitored else {}
    summary: dict[str, Any] = {
        "d_loss_final": finite(metrics_rows[-1].get("d_loss")) if metrics_rows else None,
        "g_loss_final": finite(metrics_rows[-1].get("g_loss")) if metrics_rows else None,
        "monitor_steps": [int(row["step"]) for row in monitored],
        "val_nn_cas_curve": [float(row["val_nn_cas"]) for row in monitored],
        "val_frechet": finite(last.get("val_frechet")), "recall": finite(last.get("recall")),
        "val_nn_cas": finite(last.get("val_nn_cas")), "spread": finite(last.get("spread")),
        "collapsed_classes": finite(last.get("collapsed_classes")),
    }
    for name in ("d_loss", "g_loss"):
        values = [v for v in (finite(row.get(name)) for row in late) if v is not None]
        summary[f"{name}_mean"] = sum(values) / len(values) if values else None
    return summary


def penalised_utility(cas: float, collapsed: float, classes: int) -> float:
    """CAS times the share of classes that are not collapsed (see `ganaug.tune.study.Utility`)."""
    return cas * (1.0 - min(max(float(collapsed), 0.0), classes) / classes)


def make_record(features: DatasetFeatures, cfg: GanConfig, metrics_rows: list[dict[str, Any]], *, origin: str,
                steps: int, seconds: float, device: str, best_step: int | None = None, pruned: bool = False,
                cas_val: float | None = None, study: str | None = None, trial: int | None = None) -> dict[str, Any]:
    """One history row."""
    return {"recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "origin": origin, **features.row(), "gan_config": json.dumps(cfg.model_dump(mode="json"), sort_keys=True),
            "config_hash": cfg.config_hash(), "steps": int(steps), "pruned": bool(pruned),
            **curve_summary(metrics_rows), "best_step": best_step, "cas_val": cas_val, "study": study, "trial": trial,
            "seconds": float(seconds), "device": device}


def read_history(path: str | Path) -> pa.Table:
    """The history table (empty when the file does not exist); a damaged or foreign file is a `DataError`."""
    path = Path(path)
    if not path.exists():
        return HISTORY_SCHEMA.empty_table()
    hint = "move it away or point --history / $GANAUG_HISTORY elsewhere; it was not changed"
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"history file {path} is not a readable Parquet file ({str(err).splitlines()[0][:160]}); {hint}") from None
    raw = (table.schema.metadata or {}).get(HISTORY_KEY)
    try:
        tag = json.loads(raw) if raw is not None else None
    except ValueError:
        tag = None
    if not isinstance(tag, dict) or tag.get("format") != HISTORY_FORMAT:
        raise DataError(f"history file {path} is not a ganaug GAN history (no '{HISTORY_KEY.decode()}' metadata); {hint}")
    version = tag.get("version")
    if not isinstance(version, int) or not 1 <= version <= HISTORY_VERSION:
        raise DataError(f"history file {path} has format version {version}, this ganaug reads 1 to {HISTORY_VERSION}; {hint}")
    for later in range(version + 1, HISTORY_VERSION + 1):
        for name in ADDED_COLUMNS.get(later, ()):
            if name not in table.column_names:
                table = table.append_column(HISTORY_SCHEMA.field(name), pa.nulls(len(table), HISTORY_SCHEMA.field(name).type))
    missing = [name for name in HISTORY_SCHEMA.names if name not in table.column_names]
    if missing:
        raise DataError(f"history file {path} lacks column(s) {', '.join(missing)}; {hint}")
    try:
        return table.select(HISTORY_SCHEMA.names).cast(HISTORY_SCHEMA)
    except (pa.ArrowException, ValueError) as err:
        raise DataError(f"history file {path} has columns of the wrong type ({str(err).splitlines()[0][:160]}); {hint}") from None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the history folder {path.parent}: {err.strerror or err}") from None
    with _LOCK, open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class HistoryRecorder:
    """A GAN-training callback that appends the finished training's record to the run history at `path`."""

    def __init__(self, path: str | Path, origin: str) -> None:
        self.path, self.origin = Path(path), origin

    def on_finish(self, step: int, end: Any) -> None:  # end: ganaug.gan.artifacts.TrainingEnd
        result = end.result
        append_record(self.path, make_record(dataset_features(end.dataset), end.cfg, end.metrics, origin=self.origin,
                                             steps=result.steps, seconds=result.seconds, device=result.device,
                                             best_step=result.best_step))


def check_history(path: str | Path | None) -> None:
    """Fail early (before a training) when the history file exists but could not be appended to."""
    if path is not None:
        read_history(path)


def append_record(path: str | Path, record: dict[str, Any]) -> None:
    """Add one row atomically: read and validate the file, write old rows plus the new one to a temporary file, rename."""
    path = Path(path)
    try:
        row = pa.Table.from_pylist([record], schema=HISTORY_SCHEMA)
    except (pa.ArrowException, KeyError, TypeError, ValueError) as err:
        raise DataError(f"history record for {path} does not fit the history schema: {err}") from None
    with _locked(path):
        table = pa.concat_tables([read_history(path), row])
        write_table(table.replace_schema_metadata(HISTORY_SCHEMA.metadata), path)


def history_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every record as a dict (decoded `gan_config` under `config`)."""
    rows = read_history(path).to_pylist()
    for row in rows:
        row["config"] = json.loads(row["gan_config"])
    return rows
