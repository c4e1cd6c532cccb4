"""Tiny real and synthetic tables for evaluation tests (3 classes of 8x8 bar images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganaug.classifier import ArchSpec, ConvBlockSpec, TrainConfig
from ganaug.evaluate import EvaluateConfig
from ganaug.generate import write_synthetic
from ganaug.store import DatasetMeta, DatasetRef, SyntheticRef, write_dataset

CLASSES = ["a", "b", "c"]
SPLIT_SIZES = {"train": 12, "val": 5, "test": 5}  # per class


def bar_images(labels: np.ndarray, seed: int, size: int = 8, channels: int = 1) -> np.ndarray:
    """(N, C, H, W) uint8: class k is a bright horizontal bar at rows 2k..2k+1, plus noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), channels, size, size))
    for i, label in enumerate(labels):
        images[i, :, 2 * label : 2 * label + 2, :] += 180
    return np.clip(images, 0, 255).astype(np.uint8)


def tiny_meta(size: int = 8, channels: int = 1, classes: list[str] | None = None) -> DatasetMeta:
    return DatasetMeta(height=size, width=size, channels=channels, class_names=list(classes or CLASSES), ingestion_source="test")


def write_tiny_dataset(path: Path, sizes: dict[str, int] | None = None, train_counts: list[int] | None = None) -> DatasetRef:
    """A dataset.parquet with per-class split sizes (train_counts overrides train per class)."""
    sizes = sizes or SPLIT_SIZES
    labels, splits = [], []
    for split, per_class in sizes.items():
        counts = train_counts if split == "train" and train_counts is not None else [per_class] * len(CLASSES)
        for label, count in enumerate(counts):
            labels += [label] * count
            splits += [split] * count
    labels_array = np.array(labels)
    return write_dataset(path, bar_images(labels_array, seed=1), labels_array, np.array(splits), tiny_meta())


def write_tiny_synthetic(path: Path, per_class: int = 24, size: int = 8, channels: int = 1,
                         labels: np.ndarray | None = None, classes: list[str] | None = None) -> SyntheticRef:
    if labels is None:
        labels = np.repeat(np.arange(len(CLASSES)), per_class)
    images = bar_images(np.minimum(labels, size // 2 - 1), seed=2, size=size, channels=channels)
    return write_synthetic(path, images, labels, tiny_meta(size, channels, classes), "ckpt-test", None)


def tiny_eval_config(**overrides) -> EvaluateConfig:
    base = dict(
        arch=ArchSpec(blocks=(ConvBlockSpec(channels=8),), head_width=16, dropout=0.0),
        train=TrainConfig(steps=40, eval_every=10, batch_size=16, lr=1e-2, device="cpu"),
        seeds=2,
        metrics_max_samples=200,
        nearest_k=3,
    )
    base.update(overrides)
    return EvaluateConfig(**base)
