"""Deterministic sampling from a generator and sample-grid PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ganaug.data.tensors import tensor_to_images
from ganaug.errors import DataError
from ganaug.store import atomic_path


@torch.no_grad()
def sample(generator: nn.Module, labels: torch.Tensor, seed: int, batch_size: int = 1024) -> torch.Tensor:
    """Images (N, C, H, W) float32 in [-1, 1] on the CPU for `labels` (N,); the same seed gives the same images.

    The noise is drawn on the CPU from `seed` in one go, so each image gets the same noise whatever
    the device or `batch_size` (results agree up to float rounding; bit-for-bit for the same device
    and batch size). Use a generator in eval mode (as `load_generator` returns it).
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    num_classes = int(generator.shape.num_classes)
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(f"labels must lie in 0..{num_classes - 1} for this generator, got {int(labels.min())}..{int(labels.max())}")
    noise = torch.randn(len(labels), int(generator.latent_dim), generator=torch.Generator().manual_seed(seed))
    device = next(generator.parameters()).device
    chunks = [
        generator(noise[start : start + batch_size].to(device), labels[start : start + batch_size].to(device)).float().cpu()
        for start in range(0, len(labels), batch_size)
    ]
    if not chunks:
        shape = generator.shape
        return torch.empty(0, shape.channels, shape.height, shape.width)
    return torch.cat(chunks).clamp_(-1.0, 1.0)


def grid_labels(num_classes: int, columns: int) -> torch.Tensor:
    """Labels for a grid with one row per class: 0,0,...,1,1,... (`columns` each)."""
    return torch.arange(num_classes).repeat_interleave(columns)


def tile_images(images: np.ndarray, columns: int, scale: int = 1, gap: int = 1) -> np.ndarray:
    """Tile (N, C, H, W) uint8 images row by row into one (H', W', C) mosaic: `gap` white pixels between and
    around the tiles, every pixel drawn as a `scale` x `scale` block, cells past the last image left white."""
    count, channels, height, width = images.shape
    rows = -(-count // columns)
    cell_h, cell_w = height * scale, width * scale
    canvas = np.full((rows * (cell_h + gap) + gap, columns * (cell_w + gap) + gap, channels), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        tile = image.transpose(1, 2, 0).repeat(scale, axis=0).repeat(scale, axis=1)  # (h, w, C)
        top, left = gap + row * (cell_h + gap), gap + col * (cell_w + gap)
        canvas[top : top + cell_h, left : left + cell_w] = tile
    return canvas


def grid_image(images: np.ndarray, columns: int, min_cell: int = 32, gap: int = 1) -> Image.Image:
    """The tiled images as one PIL image (mode L or RGB), small ones enlarged (nearest) to `min_cell` pixels."""
    scale = max(1, -(-min_cell // max(images.shape[2], images.shape[3])))
    canvas = tile_images(images, columns, scale, gap)
    return Image.fromarray(canvas[:, :, 0] if canvas.shape[2] == 1 else canvas)


def write_sample_grid(generator: nn.Module, path: Path, columns: int, seed: int) -> Path:
    """Sample `columns` images per class from fixed noise and write them as a PNG, one row per class."""
    labels = grid_labels(int(generator.shape.num_classes), columns)
    images = tensor_to_images(sample(generator, labels, seed))
    with atomic_path(path) as tmp:
        grid_image(images, columns).save(tmp, format="PNG")
    return path
