"""A tiny labelled dataset (3 classes of 8x8 bar images) and a few-step GAN config for generate tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganaug.gan import GanConfig
from ganaug.store import DatasetMeta, DatasetRef, write_dataset

CLASSES = ["a", "b", "c"]


def write_bar_dataset(path: Path, train_counts: list[int], size: int = 8, per_split: int = 5) -> DatasetRef:
    """dataset.parquet: class k is a bright bar at rows 2k..2k+1; `per_split` val/test images per class."""
    labels, splits = [], []
    for split, counts in (("train", train_counts), ("val", [per_split] * 3), ("test", [per_split] * 3)):
        for label, count in enumerate(counts):
            labels += [label] * count
            splits += [split] * count
    labels_array = np.array(labels)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, size=(len(labels), 1, size, size))
    for i, label in enumerate(labels_array):
        images[i, :, 2 * label : 2 * label + 2, :] += 180
    meta = DatasetMeta(height=size, width=size, channels=1, class_names=CLASSES, ingestion_source="test")
    return write_dataset(path, np.clip(images, 0, 255).astype(np.uint8), labels_array, np.array(splits), meta)


def tiny_gan_config(**overrides) -> GanConfig:
    base = dict(steps=10, batch_size=16, g_width=16, d_width=16, latent_dim=8, device="cpu",
                checkpoint_every=None, grid_every=None, metrics_every=5, grid_columns=2)
    base.update(overrides)
    return GanConfig(**base)
