"""Fixtures of the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from evalhelpers import write_tiny_dataset, write_tiny_synthetic

from ganaug.store import DatasetRef, SyntheticRef


@pytest.fixture
def real_ref(tmp_path: Path) -> DatasetRef:
    return write_tiny_dataset(tmp_path / "data" / "dataset.parquet")


@pytest.fixture
def synthetic_ref(tmp_path: Path) -> SyntheticRef:
    return write_tiny_synthetic(tmp_path / "data" / "synthetic.parquet")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks train faster on one thread, especially on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
