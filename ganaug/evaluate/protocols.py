"""Protocol runs: independent (regime, protocol, ratio, seed) specs and the pure function that runs one.

The test split is only ever scored: training sets are built from train rows (and synthetic
rows), early stopping uses the val split, and `compose_training_set` checks both by row number.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch.nn import functional as F

from ganaug.classifier import TrainedClassifier, predict_logits, train_classifier
from ganaug.classifier.train import auto_steps, cpu_threads
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import ConfigError, GanAugError
from ganaug.evaluate.config import ClassicAugmentConfig, EvaluateConfig, Protocol
from ganaug.evaluate.data import ProtocolData

log = logging.getLogger(__name__)


class RunSpec(BaseModel):
    """One independent protocol run; JSON-serializable so an orchestrator can fan it out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: Protocol
    ratio: float | None = None
    train_fraction: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class TrainingSet:
    """A protocol's training images (N, C, H, W) uint8 with labels, sources and real row numbers."""

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray  # (N,) 'real' | 'synthetic'
    real_rows: np.ndarray  # dataset.parquet row numbers of the real images used


def build_run_specs(cfg: EvaluateConfig) -> list[RunSpec]:
    """Every (regime, protocol, ratio, seed) combination, in a stable order."""
    specs = []
    for fraction in cfg.train_fractions:
        for protocol in cfg.protocols:
            ratios: list[float | None] = list(cfg.ratios) if protocol == "augmented" else [None]
            for ratio in ratios:
                for seed in cfg.seed_list():
                    specs.append(RunSpec(protocol=protocol, ratio=ratio, train_fraction=fraction, seed=seed))
    return specs


def _rng(*keys: float) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(round(k * 1_000_000)) for k in keys]))


def real_subset(data: ProtocolData, fraction: float, seed: int) -> np.ndarray:
    """Indices into the train arrays: a stratified share of each class (at least one image per class)."""
    keep = []
    for label in range(data.num_classes):
        members = np.flatnonzero(data.train_labels == label)
        if len(members) == 0:
            continue
        count = len(members) if fraction >= 1.0 else max(1, round(fraction * len(members)))
        keep.append(np.sort(_rng(seed, fraction, label).permutation(members)[:count]))
    return np.sort(np.concatenate(keep))


def synthetic_per_class(data: ProtocolData, real_labels: np.ndarray, ratio: float) -> np.ndarray:
    """How many synthetic images of each class a ratio asks for, given the real images kept."""
    return np.array([round(ratio * n) for n in data.class_counts(real_labels)], dtype=np.int64)


def check_synthetic_supply(data: ProtocolData, specs: list[RunSpec], cfg: EvaluateConfig) -> None:
    """Fail before any training if a ratio needs more synthetic images of a class than exist."""
    needs = [s for s in specs if s.protocol in ("augmented", "synthetic")]
    if not needs:
        return
    if data.synthetic_labels is None:
        raise ConfigError(
            "protocols 'augmented' and 'synthetic' need synthetic.parquet; run `ganaug generate` first "
            "or choose protocols real,classic"
        )
    available = data.class_counts(data.synthetic_labels)
    for spec in needs:
        ratio = spec.ratio if spec.protocol == "augmented" else cfg.synthetic_only_ratio
        wanted = synthetic_per_class(data, data.train_labels[real_subset(data, spec.train_fraction, spec.seed)], ratio)
        short = np.flatnonzero(wanted > available)
        if len(short):
            label = int(short[0])
            raise ConfigError(
                f"{spec.protocol} at ratio {ratio} needs {wanted[label]} synthetic images of class "
                f"'{data.class_names[label]}' but synthetic.parquet has {available[label]}; generate more "
                "(e.g. `ganaug generate --mode ratio --ratio ...`) or lower the ratio"
            )


def _pick_synthetic(synthetic_labels: np.ndarray, wanted: np.ndarray, seed: int, ratio: float) -> np.ndarray:
    picked = []
    for label, count in enumerate(wanted):
        members = np.flatnonzero(synthetic_labels == label)
        picked.append(np.sort(_rng(seed, ratio, label, 7).permutation(members)[:count]))
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def compose_training_set(spec: RunSpec, data: ProtocolData, cfg: EvaluateConfig) -> TrainingSet:
    """The training images of one run; raises if a non-train real row would be used."""
    subset = real_subset(data, spec.train_fraction, spec.seed)
    real_labels = data.train_labels[subset]
    real_images = data.train_images[subset]
    real_rows = data.rows["train"][subset]
    if spec.protocol in ("real", "classic"):
        images, labels, n_syn = real_images, real_labels, 0
    else:
        ratio = spec.ratio if spec.protocol == "augmented" else cfg.synthetic_only_ratio
        if ratio is None or data.synthetic_images is None or data.synthetic_labels is None:
            raise ConfigError(f"protocol '{spec.protocol}' needs synthetic data and a ratio")
        chosen = _pick_synthetic(data.synthetic_labels, synthetic_per_class(data, real_labels, ratio), spec.seed, ratio)
        syn_images, syn_labels = data.synthetic_images[chosen], data.synthetic_labels[chosen]
        if spec.protocol == "synthetic":
            images, labels, real_rows = syn_images, syn_labels, real_rows[:0]
        else:
            images = np.concatenate([real_images, syn_images])
            labels = np.concatenate([real_labels, syn_labels])
        n_syn = len(chosen)
    leaked = np.intersect1d(real_rows, np.concatenate([data.rows["val"], data.rows["test"]]))
    if len(leaked):
        raise GanAugError(f"internal error: {len(leaked)} val/test rows would be used for training in {spec}")
    sources = np.array(["real"] * (len(labels) - n_syn) + ["synthetic"] * n_syn)
    return TrainingSet(images=images, labels=labels.astype(np.int64), sources=sources, real_rows=real_rows)


def elastic_field(shape: torch.Size, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """A smooth random displacement (B, H, W, 2) in grid units: uniform noise, Gaussian-blurred, `alpha` pixels at most."""
    batch, _, height, width = shape
    noise = torch.rand(batch, 2, height, width, generator=generator) * 2 - 1
    radius = max(1, int(round(2 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).to(noise)
    smooth = F.conv2d(noise.reshape(-1, 1, height, width), taps.view(1, 1, 1, -1), padding=(0, radius))
    smooth = F.conv2d(smooth, taps.view(1, 1, -1, 1), padding=(radius, 0)).view(batch, 2, height, width)
    smooth = smooth / smooth.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)  # peak displacement = alpha
    pixels_to_grid = torch.tensor([2.0 / width, 2.0 / height]).view(1, 2, 1, 1)
    return (smooth * alpha * pixels_to_grid).permute(0, 2, 3, 1)


def classic_augment(cfg: ClassicAugmentConfig):  # noqa: ANN201 - returns a BatchAugment
    """A batch augmentation: random affine shift, rotation and zoom per image, optionally an elastic
    distortion on top (border pixels repeat)."""

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        uniform = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731 - (n,) in [-1, 1)
        angle = uniform() * math.radians(cfg.max_rotation)
        scale = 1 + uniform() * cfg.max_scale
        shift = torch.stack([uniform(), uniform()], 1) * (2 * cfg.max_shift)  # grid coords span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
        if cfg.elastic_alpha is not None:
            grid = grid + elastic_field(images.shape, cfg.elastic_alpha, cfg.elastic_sigma, generator).to(grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return augment


def score(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class recall from predicted and true labels."""
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    tp = np.diag(confusion).astype(float)
    support, predicted_count = confusion.sum(1), confusion.sum(0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1_denominator = support + predicted_count
    f1 = np.divide(2 * tp, f1_denominator, out=np.zeros_like(tp), where=f1_denominator > 0)
    present = support > 0
    return {
        "accuracy": float(tp.sum() / max(len(labels), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class_recall": [float(r) for r in recall],
    }


def _train(spec: RunSpec, training: TrainingSet, data: ProtocolData, cfg: EvaluateConfig) -> TrainedClassifier:
    """The run's classifier; the step budget follows the real images kept, the same for every protocol."""
    real_count = len(real_subset(data, spec.train_fraction, spec.seed))
    train_cfg = cfg.train if cfg.train.steps is not None else cfg.train.model_copy(update={"steps": auto_steps(real_count)})
    return train_classifier(
        cfg.arch,
        (images_to_tensor(training.images), torch.from_numpy(training.labels)),
        (images_to_tensor(data.val_images), torch.from_numpy(data.val_labels)),
        data.num_classes,
        train_cfg,
        seed=spec.seed,
        augment=classic_augment(cfg.classic) if spec.protocol == "classic" else None,
    )


def run_protocol(spec: RunSpec, data: ProtocolData, cfg: EvaluateConfig) -> dict[str, Any]:
    """Train one classifier for `spec`, early-stop on val, score on the real test split; one result row."""
    started = time.perf_counter()
    training = compose_training_set(spec, data, cfg)
    with cpu_threads(1):  # a no-op under run_all; keeps a run on a process/Dask worker like one on a thread
        trained = _train(spec, training, data, cfg)
    logits = predict_logits(trained.model, images_to_tensor(data.test_images))
    row = {
        "train_fraction": spec.train_fraction,
        "protocol": spec.protocol,
        "ratio": spec.ratio,
        "seed": spec.seed,
        **score(logits.argmax(1).numpy(), data.test_labels, data.num_classes),
        "n_real": int((training.sources == "real").sum()),
        "n_synthetic": int((training.sources == "synthetic").sum()),
        "val_accuracy": float(trained.best_val_accuracy),
        "best_step": int(trained.best_step),
        "steps_run": int(trained.steps_run),
        "seconds": round(time.perf_counter() - started, 3),
    }
    log.info("%s ratio=%s fraction=%s seed=%d: accuracy %.4f", spec.protocol, spec.ratio, spec.train_fraction,
             spec.seed, row["accuracy"])
    return row
