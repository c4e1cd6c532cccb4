"""Stratified train/val/test splits and training-set subsampling for low-data regimes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ganaug.data.config import IngestConfig
from ganaug.errors import ConfigError, DataError


def stratified_split(labels: np.ndarray, class_names: list[str], cfg: IngestConfig,
                     fixed_test: np.ndarray | None = None) -> np.ndarray:
    """A split name per row; each class's val/test share is its count times the fraction, rounded.

    `fixed_test` (a boolean mask) marks rows of a separate test source: they form the test split
    and the other rows are split into train and val only.
    """
    rng = np.random.default_rng(cfg.seed)
    splits = np.empty(len(labels), dtype="<U5")
    if fixed_test is not None:
        splits[fixed_test] = "test"
    for code, name in enumerate(class_names):
        members = np.flatnonzero((labels == code) & ~fixed_test if fixed_test is not None else labels == code)
        n = len(members)
        n_test = 0 if fixed_test is not None else max(1, round(n * cfg.test_fraction))
        n_val = max(1, round(n * cfg.val_fraction)) if cfg.val_fraction > 0 else 0
        if n - n_test - n_val < 1:
            needed = 1 + (n_test > 0) + (n_val > 0)
            raise DataError(
                f"class '{name}' has {n} samples, too few for a train/val/test split "
                f"(val_fraction={cfg.val_fraction}, test_fraction={0 if fixed_test is not None else cfg.test_fraction}); "
                f"it needs at least {needed}"
            )
        shuffled = rng.permutation(members)
        splits[shuffled[:n_test]] = "test"
        splits[shuffled[n_test : n_test + n_val]] = "val"
        splits[shuffled[n_test + n_val :]] = "train"
    return splits


def training_subset(labels: np.ndarray, splits: np.ndarray, class_names: list[str], cfg: IngestConfig) -> np.ndarray:
    """Boolean mask of rows to keep: val/test untouched, training rows thinned per class.

    With `labels_per_class` every class keeps exactly K (imbalance: fewer); the caller moves the rest to the pool.
    """
    rng = np.random.default_rng(cfg.seed + 1)
    keep = np.ones(len(labels), dtype=bool)
    imbalance = dict(cfg.imbalance or {})
    unknown = sorted(set(imbalance) - set(class_names))
    if unknown:
        raise ConfigError(f"imbalance names unknown class {unknown[0]!r}; classes are {class_names}")
    for code, name in enumerate(class_names):
        train = np.flatnonzero((labels == code) & (splits == "train"))
        target = len(train)
        if cfg.train_fraction is not None:
            target = max(1, round(len(train) * cfg.train_fraction))
        if cfg.train_per_class is not None:
            target = min(target, cfg.train_per_class)
        if cfg.labels_per_class is not None:  # exactly K (or the imbalance's k) labels, never fewer than asked
            target = min(cfg.labels_per_class, imbalance.get(name, cfg.labels_per_class))
            if target > len(train):
                raise ConfigError(f"labels_per_class={cfg.labels_per_class} keeps {target} labelled training images of "
                                  f"class '{name}', but it has {len(train)} in the training split; lower labels_per_class")
        elif name in imbalance:
            if imbalance[name] > len(train):
                raise ConfigError(
                    f"imbalance['{name}'] asks for {imbalance[name]} training samples but class '{name}' has {len(train)}"
                )
            target = min(target, imbalance[name])
        if target < len(train):
            dropped = rng.permutation(train)[target:]
            keep[dropped] = False
    return keep


def minority_classes(counts: Sequence[int]) -> list[bool]:
    """Which classes are a minority: fewer than half the images of the largest class."""
    largest = max(counts, default=0)
    return [n < largest / 2 for n in counts]
