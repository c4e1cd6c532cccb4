"""Turn a dataset table into training tensors and back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ganaug.errors import DataError
from ganaug.store import ALL_SPLITS, ArtifactRef, LoadedDataset, read_dataset


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, C, H, W) uint8 -> float32 in [-1, 1]."""
    # np.require copies only arrays that are read-only (e.g. views of Arrow buffers) or not contiguous
    return torch.from_numpy(np.require(images, requirements=["C", "W"])).float().div_(127.5).sub_(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """Float images in [-1, 1] (N, C, H, W) -> uint8 array, clamped and rounded."""
    scaled = ((x.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return scaled.to(torch.uint8).numpy()


def load_tensors(
    dataset: ArtifactRef | LoadedDataset | str | Path,
    split: str | None = "train",
    source: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) float32 in [-1, 1] and int64 labels for one split (None = every labelled row).

    The unlabelled pool comes only when asked for by name (split 'unlabelled'); its labels are NO_LABEL (-1).
    """
    if split is not None and split not in ALL_SPLITS:
        raise DataError(f"unknown split '{split}'; choose one of {list(ALL_SPLITS)}")
    loaded = dataset if isinstance(dataset, LoadedDataset) else read_dataset(dataset)
    mask = loaded.select(split=split, source=source) & (loaded.labelled() if split is None else True)
    x = images_to_tensor(loaded.images[mask])  # (N, C, H, W)
    y = torch.from_numpy(loaded.labels[mask].astype(np.int64))
    return x, y
