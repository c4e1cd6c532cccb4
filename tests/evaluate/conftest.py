"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalhelpers import write_tiny_dataset, write_tiny_synthetic

from ganaug.store import DatasetRef, SyntheticRef


@pytest.fixture
def real_ref(tmp_path: Path) -> DatasetRef:
    return write_tiny_dataset(tmp_path / "data" / "dataset.parquet")


@pytest.fixture
def synthetic_ref(tmp_path: Path) -> SyntheticRef:
    return write_tiny_synthetic(tmp_path / "data" / "synthetic.parquet")

