"""Fixtures of the generate tests: a tiny imbalanced dataset and a GAN trained on it for a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from genhelpers import tiny_gan_config, write_bar_dataset

from ganaug.gan import GanResult, train_gan
from ganaug.store import DatasetRef


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory) -> tuple[DatasetRef, GanResult]:
    root: Path = tmp_path_factory.mktemp("gan")
    with torch.random.fork_rng(devices=[]):
        dataset = write_bar_dataset(root / "dataset.parquet", train_counts=[12, 8, 4])
        return dataset, train_gan(dataset, tiny_gan_config(), root)

