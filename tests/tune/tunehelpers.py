"""Tiny 8x8 datasets and configs for the run history and tuning tests."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ganaug.store import DatasetMeta, DatasetRef, write_dataset

TINY_GAN: dict[str, Any] = {
    "steps": 6, "batch_size": 8, "latent_dim": 8, "g_width": 16, "d_width": 8, "metrics_every": 2,
    "checkpoint_every": 3, "grid_every": None, "grid_columns": 2, "device": "cpu", "ema_decay": 0.9,
    "monitor_per_class": 8,
}


def make_dataset(path: Path, channels: int = 1, size: int = 8, classes: int = 3, train_per_class: int = 8,
                 seed: int = 0, brightness: int = 0) -> DatasetRef:
    """Class-dependent random images: `train_per_class` train rows and 4 val and 4 test rows per class."""
    rng = np.random.default_rng(seed)
    per_class = train_per_class + 8
    labels = np.repeat(np.arange(classes), per_class)
    base = rng.integers(0, 256 - brightness, size=(classes, channels, size, size)) + brightness
    images = np.clip(base[labels] + rng.integers(-30, 30, size=(len(labels), channels, size, size)), 0, 255)
    splits = np.tile(np.array(["train"] * train_per_class + ["val"] * 4 + ["test"] * 4), classes)
    meta = DatasetMeta(height=size, width=size, channels=channels, class_names=[f"c{i}" for i in range(classes)],
                       ingestion_source="tests")
    return write_dataset(path, images.astype(np.uint8), labels, splits, meta)


@contextmanager
def bench_script(name: str) -> Iterator[ModuleType]:
    """A script of bench/ imported as a module (bench/ on sys.path only meanwhile)."""
    folder = str(Path(__file__).resolve().parents[2] / "bench")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(folder)
