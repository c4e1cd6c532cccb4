"""The GAN training stage: `train_gan(dataset, cfg, out) -> GanResult`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from ganaug.data.tensors import images_to_tensor, load_tensors
from ganaug.device import select_device
from ganaug.errors import CheckpointError, ConfigError, DataError, DivergenceError
from ganaug.gan.artifacts import Callbacks, GanPaths, MetricsLog, TrainingEnd
from ganaug.gan.checkpoint import (
    check_compatible,
    checkpoint_meta,
    content_hash,
    prune_checkpoints,
    read_checkpoint,
    read_checkpoint_with_fallback,
    write_checkpoint,
)
from ganaug.gan.config import GanConfig
from ganaug.gan.monitor import CollapseMonitor
from ganaug.gan.networks import ImageShape, count_parameters
from ganaug.gan.pool import PseudoLabelled
from ganaug.gan.sampling import write_sample_grid
from ganaug.gan.trainer import GanTrainer
from ganaug.gan.tracking import SELECTION_METRIC, BestCheckpoint, TrainingMetrics, due_at, near_best
from ganaug.store import POOL_SPLIT, ArtifactRef, DatasetRef, LoadedDataset, atomic_write_bytes, read_dataset

log = logging.getLogger(__name__)

__all__ = ["GanResult", "near_best", "train_gan"]  # near_best lives in tracking.py; callers still import it from here

VAL_MONITOR_IMAGES = 1024  # validation images scored by D at each metrics step


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
    metrics_log, carried = _start(trainer, cfg, paths, meta, loaded.content_hash)
    resumed_from = trainer.step
    log.info("training GAN on %s: %d images %s, G %d / D %d parameters, steps %d..%d",
             device, len(images), shape, count_parameters(trainer.generator),
             count_parameters(trainer.discriminator), resumed_from, cfg.steps)
    collapse = None
    if cfg.monitor_every is not None:
        collapse = CollapseMonitor(val_images, val_labels, shape.num_classes, cfg.monitor_per_class,
                                   cfg.collapse_spread, cfg.seed)
    metrics = TrainingMetrics(trainer, metrics_log, (val_images[:VAL_MONITOR_IMAGES], val_labels[:VAL_MONITOR_IMAGES]),
                              collapse, loaded.meta.class_names, carried)
    best = BestCheckpoint(cfg, meta, paths, len(collapse.real_labels) if collapse is not None else 0,
                          carried.get("best") if carried else None)
    writer = _Writer(trainer, paths, meta, metrics, best, events)
    if best.needs_rewrite(trainer.step):  # resumed at the best step, best.pt lost (a crash between two writes)
        best.write(writer.state())
    events.emit("on_start", resumed_from, cfg.steps)
    loop_started = time.perf_counter()
    _train_loop(trainer, metrics, best, writer, events)
    loop_seconds = time.perf_counter() - loop_started
    with trainer.sampling_generator() as generator:
        grid = write_sample_grid(generator, paths.final_grid, cfg.grid_columns, cfg.seed)
    metrics_log.write(paths.metrics)
    chosen = best.finish()
    trained_images = (trainer.step - resumed_from) * cfg.batch_size * cfg.d_steps_per_g
    result = GanResult(
        checkpoint_path=str(paths.last_checkpoint),
        checkpoint_id=writer.checkpoint_id or content_hash(read_checkpoint(paths.last_checkpoint)),
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
        best_checkpoint_id=chosen["checkpoint_id"],
        best_step=chosen["step"],
        selection_metric=chosen["metric"],
        best_score=chosen["score"],
        pseudo_labelled=None if pseudo_labelled is None else len(pseudo_labelled.labels),
    )
    events.emit("on_finish", result.steps, TrainingEnd(result, cfg, loaded, list(metrics_log.rows)))
    return result


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


@dataclass
class _Writer:
    """Checkpoints, best.pt and sample grids of one training, and the stop on divergence."""

    trainer: GanTrainer
    paths: GanPaths
    meta: dict[str, Any]
    metrics: TrainingMetrics
    best: BestCheckpoint
    events: Callbacks
    checkpoint_id: str | None = None  # content id of the latest checkpoint written

    def state(self) -> dict[str, Any]:
        """The training state with what the records carry over a resume (unreported loss sums, best choice)."""
        return {**self.trainer.state_dict(), "monitor": {**self.metrics.carried(), "best": self.best.record()}}

    def checkpoint(self, step: int, periodic: bool, improved: bool) -> None:
        """last.pt (and step_N.pt when periodic), best.pt when this step became the best, and the metrics so far."""
        if not self.trainer.parameters_finite():
            self.diverged(step, ["weights"])
        state = self.state()
        path, self.checkpoint_id = write_checkpoint(state, self.trainer.cfg, self.meta, self.paths.checkpoints, periodic)
        if improved:
            self.best.write(state)
        self.metrics.write(self.paths.metrics)
        self.events.emit("on_checkpoint", step, path)

    def grid(self, step: int) -> None:
        cfg = self.trainer.cfg
        with self.trainer.sampling_generator() as generator:
            path = write_sample_grid(generator, self.paths.grid(step), cfg.grid_columns, cfg.seed)
        self.events.emit("on_samples", step, path)

    def diverged(self, step: int, what: list[str]) -> NoReturn:
        path = self.paths.last_checkpoint
        payload = read_checkpoint(path)
        self.trainer.load_state_dict(payload)
        cfg = self.trainer.cfg
        raise DivergenceError(
            f"GAN training diverged by step {step} (non-finite {', '.join(what)}); restored the last good "
            f"checkpoint {path} (step {payload['step']}). Lower the learning rates (g_lr={cfg.g_lr}, d_lr={cfg.d_lr}) "
            f"or change the loss (loss='{cfg.loss}'; 'hinge' is the most stable here), then rerun with resume=true."
        )


def _train_loop(trainer: GanTrainer, metrics: TrainingMetrics, best: BestCheckpoint, writer: _Writer,
                events: Callbacks) -> None:
    """Train to `cfg.steps`; after each step, the records `due_at` names, in this order."""
    cfg = trainer.cfg
    while trainer.step < cfg.steps:
        metrics.add(trainer.train_step())
        step = trainer.step
        due = due_at(step, cfg, metrics.collapse is not None)
        if not due.anything:
            continue  # the losses stay on the device: no step waits for a read
        means = metrics.means()
        if not all(math.isfinite(value) for value in means.values()):
            writer.diverged(step, [name for name, value in means.items() if not math.isfinite(value)])
        improved = False
        if due.metrics:
            row = metrics.record(step, means, due.monitor)
            improved = due.monitor and best.consider(step, row[SELECTION_METRIC])
            events.emit("on_metrics", step, dict(row))
        if due.checkpoint or improved:
            writer.checkpoint(step, due.periodic, improved)
        if due.grid:
            writer.grid(step)
