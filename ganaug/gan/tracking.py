"""What the training loop records besides the step: when things are due, the metrics log, and best.pt.

- `due_at(step, cfg, monitoring)` says, for one step, which of metrics row, collapse reading,
  checkpoint and sample grid are due: one pure function instead of flags set in several places.
- `TrainingMetrics` is the metrics log: loss sums kept on the device between rows (no per-step read,
  so no device sync), one row per metrics step (losses, D on val, learning rates, collapse reading),
  written to metrics.parquet.
- `BestCheckpoint` is the best-checkpoint tracker: which step's checkpoint is best.pt and its id.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganaug.gan.artifacts import GanPaths, MetricsLog
from ganaug.gan.checkpoint import DamagedCheckpointError, content_hash, read_checkpoint, write_best_checkpoint
from ganaug.gan.config import GanConfig
from ganaug.gan.monitor import CollapseMonitor
from ganaug.gan.trainer import LOSS_NAMES, GanTrainer

log = logging.getLogger(__name__)

SELECTION_METRIC = "val_nn_cas"  # the collapse monitor's score that picks best.pt (higher is better)
SELECTION_RULE = "highest accuracy on real val images of a 1-nearest-neighbour classifier fit on the samples"


@dataclass(frozen=True)
class Due:
    """What a training step is followed by (every flag is already true at the final step)."""

    metrics: bool  # a metrics row (losses read from the device)
    monitor: bool  # a collapse reading in that row (it may make a new best.pt)
    checkpoint: bool  # last.pt (and step_N.pt when `periodic`)
    periodic: bool
    grid: bool  # a sample grid

    @property
    def anything(self) -> bool:
        return self.metrics or self.checkpoint or self.grid


def due_at(step: int, cfg: GanConfig, monitoring: bool) -> Due:
    """Which records follow generator step `step` (1-based) of a training of `cfg.steps` steps."""
    final = step == cfg.steps
    monitor = monitoring and cfg.monitor_every is not None and (step % cfg.monitor_every == 0 or final)
    periodic = cfg.checkpoint_every is not None and step % cfg.checkpoint_every == 0
    return Due(metrics=step % cfg.metrics_every == 0 or final or monitor, monitor=monitor,
               checkpoint=periodic or final, periodic=periodic,
               grid=(cfg.grid_every is not None and step % cfg.grid_every == 0) or final)


class TrainingMetrics:
    """The metrics log of a training: loss sums on the device between rows, and the rows themselves.

    A checkpoint carries the unreported sums (`carried()`), so a resumed run reports the same rows.
    """

    def __init__(self, trainer: GanTrainer, log_rows: MetricsLog, val: tuple[torch.Tensor, torch.Tensor],
                 collapse: CollapseMonitor | None, class_names: list[str], carried: dict[str, Any] | None) -> None:
        self.trainer, self.cfg, self.rows, self.val = trainer, trainer.cfg, log_rows, val
        self.collapse, self.class_names = collapse, class_names
        self.sums = torch.zeros(len(LOSS_NAMES), device=trainer.device)
        self.count = 0
        if carried is not None:
            self.sums.copy_(carried["sums"])
            self.count = int(carried["count"])
        self.clock = time.perf_counter() - log_rows.elapsed
        self.window = (time.perf_counter(), trainer.step)

    def add(self, losses: torch.Tensor) -> None:
        """Accumulate one step's (5,) losses on the device; nothing is read."""
        self.sums += losses
        self.count += 1

    def means(self) -> dict[str, float]:
        """Mean losses since the last row (reading them waits for the device)."""
        return dict(zip(LOSS_NAMES, (self.sums / self.count).tolist()))

    def record(self, step: int, means: dict[str, float], monitor: bool) -> dict[str, Any]:
        """Append the row of `step` (with a collapse reading when `monitor`) and start new sums; returns the row."""
        now = time.perf_counter()
        images = (step - self.window[1]) * self.cfg.batch_size * self.cfg.d_steps_per_g
        g_lr, d_lr = self.trainer.learning_rates()
        row: dict[str, Any] = {"step": step, "seconds": now - self.clock, "images_per_second": images / max(now - self.window[0], 1e-9),
                               **means, "d_val": self.trainer.mean_score(*self.val), "g_lr": g_lr, "d_lr": d_lr}
        if monitor and self.collapse is not None:
            row.update(self._collapse_reading(step))
        self.rows.append(row)
        self.sums.zero_()
        self.count = 0
        self.window = (time.perf_counter(), step)
        return row

    def _collapse_reading(self, step: int) -> dict[str, Any]:
        with self.trainer.sampling_generator() as generator:
            reading = self.collapse.measure(generator)  # type: ignore[union-attr]
        values: dict[str, Any] = reading.row()
        values["collapsed"] = [self.class_names[c] for c in reading.collapsed]
        if values["collapsed"]:
            log.warning("step %d: class(es) %s collapsed: within-class spread below %.2f of the real val "
                        "spread (samples of a class look alike); see samples_*.png", step,
                        ", ".join(values["collapsed"]), self.cfg.collapse_spread)
        return values

    def carried(self) -> dict[str, Any]:
        """The unreported loss sums, as a checkpoint stores them."""
        return {"sums": self.sums.cpu(), "count": self.count}

    def write(self, path: Path) -> Path:
        return self.rows.write(path)


def near_best(score: float, best: dict[str, Any] | None, n: int) -> bool:
    """Whether a val score (an accuracy on n val images) makes its checkpoint the chosen one.

    A later checkpoint wins unless it falls short of the best score seen by more than two binomial
    standard errors of that score: a smaller drop is within the val subset's noise, and the later
    checkpoint has trained longer (measured at 32x32 RGB, docs/benchmarks/gan.md).
    """
    if best is None:
        return True
    top = best.get("top", best["score"])
    noise = 2.0 * math.sqrt(max(top * (1.0 - top), 0.0) / max(n, 1))
    return score >= top - noise


class BestCheckpoint:
    """The best-checkpoint tracker: which step's checkpoint is best.pt (rule: `near_best` on the val score).

    `record()` is what every checkpoint stores of the choice (step, score, and the top score seen), so
    a resumed run continues the same choice; best.pt's content id is not stored, so resumed and
    uninterrupted runs write the same checkpoints.
    """

    def __init__(self, cfg: GanConfig, meta: dict[str, Any], paths: GanPaths, val_images: int,
                 record: dict[str, Any] | None) -> None:
        self.cfg, self.meta, self.paths, self.val_images = cfg, meta, paths, val_images
        self.best: dict[str, Any] | None = dict(record) if record else None  # {"step", "score", "top"}
        self.checkpoint_id: str | None = None  # content id of best.pt once this run wrote it

    def consider(self, step: int, score: float) -> bool:
        """Take the val score of `step`; True when that step's checkpoint becomes best.pt."""
        if not math.isfinite(score):
            return False
        if near_best(score, self.best, self.val_images):
            top = max(score, self.best.get("top", self.best["score"])) if self.best else score
            self.best = {"step": step, "score": score, "top": top}
            self.checkpoint_id = None
            return True
        if self.best is not None:
            self.best["top"] = max(score, self.best.get("top", self.best["score"]))
        return False

    def record(self) -> dict[str, Any] | None:
        if self.best is None:
            return None
        return {"step": self.best["step"], "score": self.best["score"], "top": self.best.get("top", self.best["score"])}

    def write(self, state: dict[str, Any]) -> None:
        """Write best.pt from the training state of the best step."""
        if self.best is None:
            raise ValueError("no best step to write best.pt for")
        selection = {"metric": SELECTION_METRIC, "step": self.best["step"], "score": self.best["score"], "rule": SELECTION_RULE}
        _, self.checkpoint_id = write_best_checkpoint(state, self.cfg, self.meta, self.paths.checkpoints, selection)

    def needs_rewrite(self, step: int) -> bool:
        """After a resume at `step`: whether best.pt must be rewritten (the record names this step and the
        file is missing, damaged or of another step, as after a crash between the two writes)."""
        if self.best is None or self.best["step"] != step:
            return False
        best = self.paths.best_checkpoint
        with contextlib.suppress(DamagedCheckpointError):
            if best.is_file() and int(read_checkpoint(best)["step"]) == step:
                return False
        return True

    def finish(self) -> dict[str, Any]:
        """Make sure best.pt exists (the final checkpoint when nothing was measured); returns the choice."""
        if self.best is None:
            payload = read_checkpoint(self.paths.last_checkpoint)
            selection = {"metric": None, "step": int(payload["step"]), "score": None,
                         "rule": "last checkpoint (collapse monitor off: monitor_every=None)"}
            state = {key: value for key, value in payload.items() if key not in ("format", "version", "config", "meta")}
            _, checkpoint_id = write_best_checkpoint(state, self.cfg, self.meta, self.paths.checkpoints, selection)
            return {"step": selection["step"], "score": None, "metric": None, "checkpoint_id": checkpoint_id}
        checkpoint_id = self.checkpoint_id or content_hash(read_checkpoint(self.paths.best_checkpoint))
        return {"step": self.best["step"], "score": self.best["score"], "metric": SELECTION_METRIC, "checkpoint_id": checkpoint_id}
