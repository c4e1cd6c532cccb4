"""Fixtures of the run history and tuning tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tunehelpers import TINY_GAN, make_dataset

from ganaug.gan.config import GanConfig
from ganaug.store import DatasetRef


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> DatasetRef:
    return make_dataset(tmp_path / "data" / "dataset.parquet")


@pytest.fixture
def tiny_gan() -> GanConfig:
    return GanConfig(**TINY_GAN)
