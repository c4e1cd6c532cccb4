"""Where the GAN stage writes, the metrics table, and progress callbacks."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ganaug.runs import GanPaths
from ganaug.store import write_table

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("step", "seconds", "images_per_second", "d_loss", "g_loss", "d_real", "d_fake", "d_val", "g_lr", "d_lr",
                  "augment_p", "spread", "min_class_spread", "recall", "min_class_recall", "val_frechet",
                  "val_nn_cas", "collapsed_classes")
MONITOR_COLUMNS = ("spread", "min_class_spread", "recall", "min_class_recall", "val_frechet", "val_nn_cas",
                   "collapsed_classes")
HOOKS = ("on_start", "on_metrics", "on_checkpoint", "on_samples", "on_finish")


class MetricsLog:
    """Rows of training metrics, written to Parquet as a whole (the table is small)."""

    def __init__(self, rows: list[dict[str, float]] | None = None) -> None:
        self.rows = list(rows or [])

    @classmethod
    def resume(cls, path: Path, up_to_step: int) -> MetricsLog:
        """Rows already recorded up to `up_to_step` (rows of steps after that checkpoint are dropped)."""
        if not path.is_file():
            return cls()
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as err:
            log.warning("ignoring unreadable metrics %s on resume: %s", path, err)
            return cls()
        if set(METRIC_COLUMNS) - set(table.column_names):
            log.warning("ignoring metrics %s on resume: columns differ from %s", path, METRIC_COLUMNS)
            return cls()
        return cls([row for row in table.select(list(METRIC_COLUMNS)).to_pylist() if row["step"] <= up_to_step])

    @property
    def elapsed(self) -> float:
        """Training seconds recorded so far (carried over by a resumed run)."""
        return float(self.rows[-1]["seconds"]) if self.rows else 0.0

    def append(self, row: dict[str, float]) -> None:
        self.rows.append({name: row.get(name, math.nan) for name in METRIC_COLUMNS})

    def write(self, path: Path) -> Path:
        columns = {name: [row[name] for row in self.rows] for name in METRIC_COLUMNS}
        types = {name: pa.int64() if name == "step" else pa.float64() for name in METRIC_COLUMNS}
        table = pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})
        return write_table(table, path)

    def last(self) -> dict[str, float | None]:
        """The latest row with NaN replaced by None (JSON-friendly)."""
        row = self.rows[-1] if self.rows else {}
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


@dataclass(frozen=True)
class TrainingEnd:
    """What a finished training hands its `on_finish` callbacks (e.g. the runner's run-history recorder)."""

    result: Any  # GanResult
    cfg: Any  # the GanConfig that trained (with what the pool changed)
    dataset: Any  # the LoadedDataset trained on
    metrics: list[dict[str, float]]  # the metrics rows of the whole training


class Callbacks:
    """Dispatch training events to user callbacks.

    A plain callable receives `(step, metrics)` at every metrics step. An object may define any of
    `on_start(step, total_steps)`, `on_metrics(step, metrics)`, `on_checkpoint(step, path)`,
    `on_samples(step, path)` and `on_finish(step, TrainingEnd)`.
    """

    def __init__(self, callbacks: Iterable[Any] | Callable[..., Any] | None) -> None:
        if callbacks is None:
            self.items: list[Any] = []
        elif callable(callbacks) or _has_hooks(callbacks) or not isinstance(callbacks, Iterable):
            self.items = [callbacks]
        else:
            self.items = list(callbacks)
        for item in self.items:
            if not (callable(item) or _has_hooks(item)):
                raise TypeError(f"callback {item!r} is neither callable nor has any of the hooks {HOOKS}")

    def emit(self, hook: str, step: int, value: Any) -> None:
        for item in self.items:
            if _has_hooks(item):
                method = getattr(item, hook, None)
                if method is not None:
                    method(step, value)
            elif hook == "on_metrics":
                item(step, value)


def _has_hooks(item: Any) -> bool:
    return any(callable(getattr(item, hook, None)) for hook in HOOKS)
