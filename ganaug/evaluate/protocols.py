"""Protocol runs: independent (regime, protocol, ratio, seed) specs and the pure function that runs one.

The test split is only ever scored: training sets are built from train rows (and synthetic
rows), checkpoints are chosen on the val split, and `compose_training_set` checks both by row number.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import accuracy_score, f1_score, recall_score

from ganaug.classifier import TrainedClassifier, predict_logits
from ganaug.classifier.train import cpu_threads
from ganaug.data.tensors import images_to_tensor
from ganaug.errors import ConfigError, GanAugError
from ganaug.evaluate.config import FILLING_PROTOCOLS, SYNTHETIC_PROTOCOLS, EvaluateConfig, Protocol
from ganaug.evaluate.augment import classic_augment, elastic_field  # noqa: F401 - part of this module's API
from ganaug.evaluate.data import ProtocolData
from ganaug.evaluate.pool import PoolFit
from ganaug.evaluate.strategies import train_run

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
            for ratio in protocol_ratios(protocol, cfg):
                for seed in cfg.seed_list():
                    specs.append(RunSpec(protocol=protocol, ratio=ratio, train_fraction=fraction, seed=seed))
    return specs


def protocol_ratios(protocol: str, cfg: EvaluateConfig) -> list[float | None]:
    """The synthetic-to-real ratios a protocol runs at (None: it has no ratio)."""
    if protocol in ("augmented", "semi_augmented"):
        return list(cfg.ratios)
    if protocol in ("weighted", "augmented_classic", "soft"):
        return [cfg.strategy.ratio]
    if protocol in ("synthetic", "pretrain"):
        return [cfg.synthetic_only_ratio]
    return [None]


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
    return data.synthetic_per_class(real_labels, ratio)


def synthetic_wanted(spec: RunSpec, data: ProtocolData, real_labels: np.ndarray, cfg: EvaluateConfig) -> np.ndarray:
    """Synthetic images per class that a run trains on (zeros for protocols without synthetic data)."""
    if spec.protocol in FILLING_PROTOCOLS:  # fill every class up to the largest
        counts = data.class_counts(real_labels)
        gap = (counts.max() - counts) * (counts > 0)
        if spec.protocol == "balanced_mixed":
            return np.round(gap * cfg.strategy.fill_synthetic_share).astype(np.int64)
        return gap
    if spec.protocol not in SYNTHETIC_PROTOCOLS or spec.ratio is None:
        return np.zeros(data.num_classes, dtype=np.int64)
    return synthetic_per_class(data, real_labels, spec.ratio)


def check_synthetic_supply(data: ProtocolData, specs: list[RunSpec], cfg: EvaluateConfig) -> None:
    """Fail before any training if a run needs more synthetic images of a class than exist."""
    needs = [s for s in specs if s.protocol in SYNTHETIC_PROTOCOLS]
    if not needs:
        return
    if data.synthetic_labels is None:
        raise ConfigError(
            f"protocols {sorted({s.protocol for s in needs})} need synthetic.parquet; run `ganaug generate` first "
            "or choose protocols real,classic,oversampled"
        )
    available = data.class_counts(data.synthetic_labels)
    for spec in needs:
        kept = data.train_labels[real_subset(data, spec.train_fraction, spec.seed)]
        wanted = synthetic_wanted(spec, data, kept, cfg)
        short = np.flatnonzero(wanted > available)
        if len(short):
            label = int(short[0])
            at = f" at ratio {spec.ratio}" if spec.ratio is not None else ""
            raise ConfigError(
                f"{spec.protocol}{at} needs {wanted[label]} synthetic images of class "
                f"'{data.class_names[label]}' but synthetic.parquet has {available[label]}; generate more "
                "(e.g. `ganaug generate --mode ratio --ratio ...`, or --mode balance) or lower the ratio"
            )


def _oversample(labels: np.ndarray, num_classes: int, seed: int, filled: np.ndarray) -> np.ndarray:
    """Indices that repeat the images of smaller classes (drawn with replacement) up to the largest class,
    less the `filled` images per class that synthetic ones supply."""
    counts = np.bincount(labels, minlength=num_classes)
    extra = []
    for label in np.flatnonzero(counts):
        members = np.flatnonzero(labels == label)
        extra.append(_rng(seed, label, 11).choice(members, size=counts.max() - counts[label] - filled[label], replace=True))
    return np.concatenate([np.arange(len(labels)), *extra])


def _pick_synthetic(synthetic_labels: np.ndarray, wanted: np.ndarray, seed: int, ratio: float) -> np.ndarray:
    picked = []
    for label, count in enumerate(wanted):
        members = np.flatnonzero(synthetic_labels == label)
        picked.append(np.sort(_rng(seed, ratio, label, 7).permutation(members)[:count]))
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def compose_training_set(spec: RunSpec, data: ProtocolData, cfg: EvaluateConfig) -> TrainingSet:
    """The training images of one run; raises if a non-train real row would be used."""
    subset = real_subset(data, spec.train_fraction, spec.seed)
    kept_labels = data.train_labels[subset]
    wanted = synthetic_wanted(spec, data, kept_labels, cfg)
    if spec.protocol in ("oversampled", "balanced_mixed"):  # balanced_mixed: the part of each gap synthetic images leave
        subset = subset[_oversample(kept_labels, data.num_classes, spec.seed, wanted)]
    real_labels = data.train_labels[subset]
    real_images = data.train_images[subset]
    real_rows = data.rows["train"][subset]
    if wanted.sum() == 0:
        images, labels, n_syn = real_images, real_labels, 0
    else:
        if data.synthetic_images is None or data.synthetic_labels is None:
            raise ConfigError(f"protocol '{spec.protocol}' needs synthetic data")
        chosen = _pick_synthetic(data.synthetic_labels, wanted, spec.seed, spec.ratio or 0.0)
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


def score(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, macro-F1, balanced accuracy and per-class recall from predicted and true labels.

    Macro-F1 and balanced accuracy average over the classes present in `labels` (a class the
    split lacks has no recall to average); a class never predicted scores 0, not a warning.
    """
    if len(labels) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0, "balanced_accuracy": 0.0, "per_class_recall": [0.0] * num_classes}
    present = np.unique(labels)
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        "balanced_accuracy": float(recall_score(labels, predicted, labels=present, average="macro", zero_division=0)),
        "per_class_recall": [float(r) for r in recall_score(labels, predicted, labels=np.arange(num_classes),
                                                            average=None, zero_division=0)],
    }


def run_protocol(spec: RunSpec, data: ProtocolData, cfg: EvaluateConfig) -> dict[str, Any]:
    """Train one classifier for `spec`, keep its best val checkpoint, score on the real test split; one result row."""
    started = time.perf_counter()
    training = compose_training_set(spec, data, cfg)
    with cpu_threads(1):  # a no-op under run_all; keeps a run on a process/Dask worker like one on a thread
        real_count = len(real_subset(data, spec.train_fraction, spec.seed))
        outcome = train_run(spec, training, data, cfg, real_count)
        return protocol_row(spec, data, training, outcome, started)


def protocol_row(spec: RunSpec, data: ProtocolData, training: TrainingSet,
                 outcome: tuple[TrainedClassifier, int] | PoolFit, started: float) -> dict[str, Any]:
    """The result row of a run whose classifier is trained (`outcome` of `train_run`): scores on the test split,
    its val scores, sizes, steps, and the seconds since `started`."""
    pool = outcome if isinstance(outcome, PoolFit) else None
    trained, n_synthetic = (pool.trained, pool.synthetic) if pool is not None else outcome
    logits = predict_logits(trained.model, images_to_tensor(data.test_images))
    val_logits = predict_logits(trained.model, images_to_tensor(data.val_images))
    row = {
        "train_fraction": spec.train_fraction,
        "protocol": spec.protocol,
        "ratio": spec.ratio,
        "seed": spec.seed,
        **score(logits.argmax(1).numpy(), data.test_labels, data.num_classes),
        "n_real": int((training.sources == "real").sum()),
        "n_synthetic": n_synthetic,
        "val_accuracy": float(trained.best_val_accuracy),
        "val_macro_f1": score(val_logits.argmax(1).numpy(), data.val_labels, data.num_classes)["macro_f1"],
        "best_step": int(trained.best_step),
        "steps_run": int(trained.steps_run),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if pool is not None:
        row["n_pseudo"] = pool.pseudo_labels
        row["pool_details"] = json.dumps(pool.details, sort_keys=True)
    log.info("%s ratio=%s fraction=%s seed=%d: accuracy %.4f", spec.protocol, spec.ratio, spec.train_fraction,
             spec.seed, row["accuracy"])
    return row
