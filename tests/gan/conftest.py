"""A tiny 8x8 dataset and a GAN config that trains in well under a second."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ganaug.gan.config import GanConfig
from ganaug.store import DatasetMeta, DatasetRef, write_dataset

TINY: dict[str, Any] = {
    "steps": 6, "batch_size": 8, "latent_dim": 8, "g_width": 16, "d_width": 8, "metrics_every": 2,
    "checkpoint_every": 3, "grid_every": 3, "grid_columns": 2, "device": "cpu", "ema_decay": 0.9,
}


def make_dataset(path: Path, channels: int = 1, size: int = 8, classes: int = 3, per_class: int = 12,
                 seed: int = 0, split_names: tuple[str, ...] = ("train", "val", "test")) -> DatasetRef:
    """Class-dependent random uint8 images; each class has 8 rows per split (4 rows in val and test)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    base = rng.integers(0, 256, size=(classes, channels, size, size))
    images = np.clip(base[labels] + rng.integers(-30, 30, size=(len(labels), channels, size, size)), 0, 255)
    pattern = ["train"] * (per_class - 4) + ["val"] * 2 + ["test"] * 2
    splits = np.tile(np.array([name if name in split_names else split_names[0] for name in pattern]), classes)
    meta = DatasetMeta(height=size, width=size, channels=channels, class_names=[f"c{i}" for i in range(classes)],
                       ingestion_source="tests")
    return write_dataset(path, images.astype(np.uint8), labels, splits, meta)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> DatasetRef:
    return make_dataset(tmp_path / "data" / "dataset.parquet")


@pytest.fixture
def dataset_factory() -> Callable[..., DatasetRef]:
    """`make_dataset(path, channels=, size=, classes=, per_class=, seed=, split_names=)`."""
    return make_dataset


@pytest.fixture
def tiny_cfg() -> GanConfig:
    return GanConfig(**TINY)
