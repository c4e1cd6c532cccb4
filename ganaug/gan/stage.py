"""The GAN training stage: `train_gan(dataset, cfg, out) -> GanResult`."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from ganaug.data.tensors import images_to_tensor, load_tensors
from ganaug.device import select_device
from ganaug.errors import CheckpointError, ConfigError, DataError, DivergenceError
from ganaug.gan.artifacts import Callbacks, GanPaths, MetricsLog, TrainingEnd
from ganaug.gan.checkpoint import (
    DamagedCheckpointError,
    check_compatible,
    checkpoint_meta,
    content_hash,
    prune_checkpoints,
    read_checkpoint,
    read_checkpoint_with_fallback,
    write_best_checkpoint,
    write_checkpoint,
)
from ganaug.gan.config import GanConfig
from ganaug.gan.monitor import CollapseMonitor
from ganaug.gan.networks import ImageShape, count_parameters
from ganaug.gan.pool import PseudoLabelled
from ganaug.gan.sampling import write_sample_grid
from ganaug.gan.trainer import LOSS_NAMES, GanTrainer
from ganaug.store import POOL_SPLIT, ArtifactRef, DatasetRef, LoadedDataset, atomic_write_bytes, read_dataset

log = logging.getLogger(__name__)

VAL_MONITOR_IMAGES = 1024  # validation images scored by D at each metrics step
SELECTION_METRIC = "val_nn_cas"  # the collapse monitor's score that picks best.pt (higher is better)


class GanResult(BaseModel):
    """What a GAN training produced; small and JSON-serializable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint_path: str
    checkpoint_id: str
    metrics_path: str
    grid_path: str
    steps: int
    resumed_from: int
    seconds: float
    images_per_second: float
    device: str
    dataset_hash: str
    config_hash: str
    final_metrics: dict[str, float | None]
    best_checkpoint_path: str | None = None
    best_checkpoint_id: str | None = None
    best_step: int | None = None
    selection_metric: str | None = None
    best_score: float | None = None
    pseudo_labelled: int | None = None  # pool images trained on with teacher-given labels (GanConfig.pool)


def train_gan(dataset: DatasetRef | str | Path, cfg: GanConfig, out: str | Path,
              callbacks: Iterable[Any] | Callable[..., Any] | None = None, *,
              pseudo_labelled: PseudoLabelled | None = None) -> GanResult:
    """Train the conditional GAN on the dataset's train split and write everything under `out/gan/`.

    `pseudo_labelled`: pool images with teacher-given labels, trained on beside the labelled ones in
    class-balanced batches (GanConfig.pool; the runner makes them).

    Callbacks get the training's events (`Callbacks`); its end goes to `on_finish` hooks with a
    `TrainingEnd` (the runner's run-history recorder is one).
    """
    started = time.perf_counter()
    events = Callbacks(callbacks)
    paths = GanPaths.under(out)
    loaded = _training_data(dataset)
    shape = ImageShape(loaded.meta.channels, loaded.meta.height, loaded.meta.width, loaded.meta.num_classes)
    device = select_device(cfg.device)
    images, labels = load_tensors(loaded, "train", source="real")
    if pseudo_labelled is not None:
        images, labels, cfg = _with_pseudo_labelled(loaded, images, labels, pseudo_labelled, cfg)
    val_images, val_labels = load_tensors(loaded, "val", source="real")  # monitoring only; test is never read
    trainer = GanTrainer(cfg, shape, device, images, labels)
    meta = checkpoint_meta(cfg, shape, loaded.meta.class_names, loaded.content_hash,
                           pseudo_labelled.content_hash() if pseudo_labelled is not None else None)
    metrics_log, pending = _start(trainer, cfg, paths, meta, loaded.content_hash)
    resumed_from = trainer.step
    log.info("training GAN on %s: %d images %s, G %d / D %d parameters, steps %d..%d",
             device, len(images), shape, count_parameters(trainer.generator),
             count_parameters(trainer.discriminator), resumed_from, cfg.steps)
    collapse = None
    if cfg.monitor_every is not None:
        collapse = CollapseMonitor(val_images, val_labels, shape.num_classes, cfg.monitor_per_class,
                                   cfg.collapse_spread, cfg.seed)
    monitor = _Monitor(trainer, paths, meta, metrics_log, events,
                       (val_images[:VAL_MONITOR_IMAGES], val_labels[:VAL_MONITOR_IMAGES]), pending,
                       collapse, loaded.meta.class_names)
    events.emit("on_start", resumed_from, cfg.steps)
    loop_started = time.perf_counter()
    while trainer.step < cfg.steps:
        monitor.after_step(trainer.train_step())
    loop_seconds = time.perf_counter() - loop_started
    with trainer.sampling_generator() as generator:
        grid = write_sample_grid(generator, paths.final_grid, cfg.grid_columns, cfg.seed)
    metrics_log.write(paths.metrics)
    best = monitor.finish_best()
    trained_images = (trainer.step - resumed_from) * cfg.batch_size * cfg.d_steps_per_g
    result = GanResult(
        checkpoint_path=str(paths.last_checkpoint),
        checkpoint_id=monitor.checkpoint_id or content_hash(read_checkpoint(paths.last_checkpoint)),
        metrics_path=str(paths.metrics),
        grid_path=str(grid),
        steps=trainer.step,
        resumed_from=resumed_from,
        seconds=round(time.perf_counter() - started, 3),
        images_per_second=round(trained_images / loop_seconds, 1) if trained_images else 0.0,
        device=str(device),
        dataset_hash=loaded.content_hash,
        config_hash=cfg.config_hash(),
        final_metrics=metrics_log.last(),
        best_checkpoint_path=str(paths.best_checkpoint),
        best_checkpoint_id=best["checkpoint_id"],
        best_step=best["step"],
        selection_metric=best["metric"],
        best_score=best["score"],
        pseudo_labelled=None if pseudo_labelled is None else len(pseudo_labelled.labels),
    )
    events.emit("on_finish", result.steps, TrainingEnd(result, cfg, loaded, list(metrics_log.rows)))
    return result


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


def _with_pseudo_labelled(loaded: LoadedDataset, images: torch.Tensor, labels: torch.Tensor, pseudo: PseudoLabelled,
                          cfg: GanConfig) -> tuple[torch.Tensor, torch.Tensor, GanConfig]:
    """The labelled images followed by the pseudo-labelled pool images; batches class-balanced unless set otherwise."""
    pool = np.flatnonzero(loaded.select(split=POOL_SPLIT))
    pseudo.check(len(pool), loaded.meta.num_classes)
    extra = images_to_tensor(loaded.images[pool[pseudo.positions]])
    log.info("the GAN also trains on %d pseudo-labelled pool images (%s)", len(extra), pseudo.details)
    if cfg.class_sampling == "auto":
        cfg = cfg.model_copy(update={"class_sampling": "balanced"})
    return torch.cat([images, extra]), torch.cat([labels, torch.from_numpy(pseudo.labels.astype(np.int64))]), cfg


def _training_data(dataset: DatasetRef | str | Path) -> LoadedDataset:
    loaded = read_dataset(dataset)
    if isinstance(dataset, ArtifactRef) and dataset.content_hash and dataset.content_hash != loaded.content_hash:
        raise DataError(f"dataset {loaded.path} changed since its reference was made (content hash differs); rerun ingestion")
    if not loaded.select(split="train", source="real").any():
        raise DataError(f"dataset {loaded.path}: no real rows with split 'train' (column 'split'); the GAN trains on them only")
    return loaded


def _start(trainer: GanTrainer, cfg: GanConfig, paths: GanPaths, meta: dict[str, Any],
           dataset_hash: str) -> tuple[MetricsLog, dict[str, Any] | None]:
    """Resume from last.pt when asked and present; otherwise clear stale files and save step 0.

    Returns the metrics so far and the checkpoint's unreported loss sums (None when starting afresh).
    """
    checkpoint = paths.last_checkpoint
    if cfg.resume and checkpoint.is_file():
        payload, source = read_checkpoint_with_fallback(checkpoint)
        if source != checkpoint:  # last.pt was damaged: the periodic checkpoint becomes the last one again
            atomic_write_bytes(checkpoint, source.read_bytes())
        check_compatible(payload, checkpoint, cfg, trainer.shape, dataset_hash, meta.get("pseudo_labels_hash"))
        if int(payload["step"]) > cfg.steps:
            raise ConfigError(f"steps={cfg.steps} is below the step {payload['step']} of checkpoint {checkpoint}; raise steps to continue")
        try:
            trainer.load_state_dict(payload)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"checkpoint {checkpoint} cannot be restored into this run ({first})") from None
        prune_checkpoints(paths.checkpoints, cfg.keep_checkpoints, above_step=trainer.step)
        log.info("resuming GAN training from %s at step %d", checkpoint, trainer.step)
        return MetricsLog.resume(paths.metrics, trainer.step), payload.get("monitor")
    if cfg.resume:
        log.info("resume requested but %s does not exist; starting at step 0", checkpoint)
    prune_checkpoints(paths.checkpoints, 0)
    paths.best_checkpoint.unlink(missing_ok=True)
    for stale in paths.root.glob("samples_*.png"):
        stale.unlink()
    write_checkpoint({**trainer.state_dict(), "monitor": None}, cfg, meta, paths.checkpoints, periodic=False)
    return MetricsLog(), None


class _Monitor:
    """Metrics, collapse monitor, finiteness checks, checkpoints and sample grids, kept out of the training loop."""

    def __init__(self, trainer: GanTrainer, paths: GanPaths, meta: dict[str, Any], history: MetricsLog,
                 events: Callbacks, val: tuple[torch.Tensor, torch.Tensor], pending: dict[str, Any] | None,
                 collapse: CollapseMonitor | None, class_names: list[str]) -> None:
        self.trainer, self.cfg, self.paths, self.meta = trainer, trainer.cfg, paths, meta
        self.history, self.events, self.val = history, events, val
        self.collapse, self.class_names = collapse, class_names
        # Loss sums since the last metrics row; a checkpoint carries them so a resumed run reports the same rows.
        self.sums = torch.zeros(len(LOSS_NAMES), device=trainer.device)
        self.count = 0
        # The best val score so far: {"step", "score", "checkpoint_id"}; None before the first reading.
        self.best: dict[str, Any] | None = None
        if pending is not None:
            self.sums.copy_(pending["sums"])
            self.count = int(pending["count"])
            self.best = dict(pending["best"], checkpoint_id=None) if pending.get("best") else None
            self._restore_best()
        self.clock = time.perf_counter() - history.elapsed
        self.checkpoint_id: str | None = None  # content hash of the latest checkpoint written
        self.window = (time.perf_counter(), trainer.step)

    def after_step(self, losses: torch.Tensor) -> None:
        """Accumulate on the device; read values (a sync) only when something is due."""
        self.sums += losses
        self.count += 1
        step, cfg = self.trainer.step, self.cfg
        final = step == cfg.steps
        periodic = cfg.checkpoint_every is not None and step % cfg.checkpoint_every == 0
        due_grid = cfg.grid_every is not None and step % cfg.grid_every == 0
        due_monitor = self.collapse is not None and (step % cfg.monitor_every == 0 or final)  # type: ignore[operator]
        due_metrics = step % cfg.metrics_every == 0 or final or due_monitor
        if not (due_metrics or periodic or final or due_grid):
            return
        means = (self.sums / self.count).tolist()
        if not all(math.isfinite(value) for value in means):
            self._diverged(step, [name for name, value in zip(LOSS_NAMES, means) if not math.isfinite(value)])
        improved = False
        if due_metrics:
            improved = self._record(step, dict(zip(LOSS_NAMES, means)), due_monitor)
        if periodic or final or improved:
            self._checkpoint(step, periodic, improved)
        if due_grid or final:
            with self.trainer.sampling_generator() as generator:
                path = write_sample_grid(generator, self.paths.grid(step), cfg.grid_columns, cfg.seed)
            self.events.emit("on_samples", step, path)

    def _record(self, step: int, means: dict[str, float], due_monitor: bool) -> bool:
        """Append a metrics row (with a collapse reading when due); True when the val score improved."""
        now = time.perf_counter()
        images = (step - self.window[1]) * self.cfg.batch_size * self.cfg.d_steps_per_g
        g_lr, d_lr = self.trainer.learning_rates()
        row: dict[str, Any] = {"step": step, "seconds": now - self.clock, "images_per_second": images / max(now - self.window[0], 1e-9),
                               **means, "d_val": self.trainer.mean_score(*self.val), "g_lr": g_lr, "d_lr": d_lr}
        improved = False
        if due_monitor and self.collapse is not None:
            with self.trainer.sampling_generator() as generator:
                reading = self.collapse.measure(generator)
            row.update(reading.row())
            row["collapsed"] = [self.class_names[c] for c in reading.collapsed]
            if row["collapsed"]:
                log.warning("step %d: class(es) %s collapsed: within-class spread below %.2f of the real val "
                            "spread (samples of a class look alike); see samples_*.png", step,
                            ", ".join(row["collapsed"]), self.cfg.collapse_spread)
            score = row[SELECTION_METRIC]
            improved = math.isfinite(score) and near_best(score, self.best, len(self.collapse.real_labels))
            if improved:
                top = max(score, self.best.get("top", self.best["score"])) if self.best else score
                self.best = {"step": step, "score": score, "top": top, "checkpoint_id": None}
            elif self.best is not None and math.isfinite(score):
                self.best["top"] = max(score, self.best.get("top", self.best["score"]))
        self.history.append(row)
        self.events.emit("on_metrics", step, dict(row))
        self.sums.zero_()
        self.count = 0
        self.window = (time.perf_counter(), step)
        return improved

    def _checkpoint(self, step: int, periodic: bool, improved: bool) -> None:
        if not self.trainer.parameters_finite():
            self._diverged(step, ["weights"])
        monitor_state = {"sums": self.sums.cpu(), "count": self.count, "best": self._best_record()}
        state = {**self.trainer.state_dict(), "monitor": monitor_state}
        path, self.checkpoint_id = write_checkpoint(state, self.cfg, self.meta, self.paths.checkpoints, periodic)
        if improved and self.best is not None:
            self._write_best(state, self.best)
        self.history.write(self.paths.metrics)
        self.events.emit("on_checkpoint", step, path)

    def _best_record(self) -> dict[str, Any] | None:
        """What a checkpoint records of the best score (not the best file's id, so resumed runs write the same)."""
        if self.best is None:
            return None
        return {"step": self.best["step"], "score": self.best["score"], "top": self.best.get("top", self.best["score"])}

    def _write_best(self, state: dict[str, Any], best: dict[str, Any]) -> None:
        selection = {"metric": SELECTION_METRIC, "step": best["step"], "score": best["score"],
                     "rule": "highest accuracy on real val images of a 1-nearest-neighbour classifier fit on the samples"}
        _, best["checkpoint_id"] = write_best_checkpoint(state, self.cfg, self.meta, self.paths.checkpoints, selection)

    def _restore_best(self) -> None:
        """After a resume: best.pt must be the checkpoint the record names (it may be missing after a crash)."""
        if self.best is None or self.best["step"] != self.trainer.step:
            return
        best = self.paths.best_checkpoint
        with contextlib.suppress(DamagedCheckpointError):  # a damaged best.pt is rewritten below
            if best.is_file() and int(read_checkpoint(best)["step"]) == self.trainer.step:
                return
        state = {**self.trainer.state_dict(), "monitor": {"sums": self.sums.cpu(), "count": self.count, "best": self._best_record()}}
        self._write_best(state, self.best)

    def finish_best(self) -> dict[str, Any]:
        """Make sure best.pt exists (the final checkpoint when nothing was measured); returns the choice."""
        if self.best is None:
            payload = read_checkpoint(self.paths.last_checkpoint)
            selection = {"metric": None, "step": int(payload["step"]), "score": None,
                         "rule": "last checkpoint (collapse monitor off: monitor_every=None)"}
            state = {key: value for key, value in payload.items() if key not in ("format", "version", "config", "meta")}
            _, checkpoint_id = write_best_checkpoint(state, self.cfg, self.meta, self.paths.checkpoints, selection)
            return {"step": selection["step"], "score": None, "metric": None, "checkpoint_id": checkpoint_id}
        checkpoint_id = self.best.get("checkpoint_id") or content_hash(read_checkpoint(self.paths.best_checkpoint))
        return {"step": self.best["step"], "score": self.best["score"], "metric": SELECTION_METRIC, "checkpoint_id": checkpoint_id}

    def _diverged(self, step: int, what: list[str]) -> None:
        path = self.paths.last_checkpoint
        payload = read_checkpoint(path)
        self.trainer.load_state_dict(payload)
        cfg = self.cfg
        raise DivergenceError(
            f"GAN training diverged by step {step} (non-finite {', '.join(what)}); restored the last good "
            f"checkpoint {path} (step {payload['step']}). Lower the learning rates (g_lr={cfg.g_lr}, d_lr={cfg.d_lr}) "
            f"or change the loss (loss='{cfg.loss}'; 'hinge' is the most stable here), then rerun with resume=true."
        )
