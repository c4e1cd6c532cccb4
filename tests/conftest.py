"""Shared fixtures: tiny inputs of every supported kind, written by the tests themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from ingest_inputs import tiny_images

# Tiny test tensors run faster on one thread than split across cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _history_outside_the_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """GAN trainings append to the run history; in tests it goes to a temporary file, never data/history."""
    from ganaug.tune.history import HISTORY_ENV

    previous = os.environ.get(HISTORY_ENV)
    os.environ[HISTORY_ENV] = str(tmp_path_factory.mktemp("history") / "gan_runs.parquet")
    yield
    if previous is None:
        os.environ.pop(HISTORY_ENV, None)
    else:
        os.environ[HISTORY_ENV] = previous


@pytest.fixture(autouse=True)
def fresh_fault_counts() -> Iterator[None]:
    """Each test counts fault points from zero, as the separate process of a real run does."""
    from ganaug import faults

    faults.reset()
    yield


@pytest.fixture
def rgb_folder(tmp_path: Path) -> Path:
    from PIL import Image

    images, labels = tiny_images(channels=3)
    root = tmp_path / "images"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / ["cat", "dog", "owl"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "RGB").save(folder / f"{i:03d}.png")
    return root

