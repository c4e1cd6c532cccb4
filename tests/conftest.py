"""Shared fixtures: tiny inputs of every supported kind, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ingest_inputs import tiny_images

# Tiny test tensors run faster on one thread than split across cores.
torch.set_num_threads(1)


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

