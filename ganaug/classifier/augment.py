"""The project's one affine augmentation for classifier training (the evaluate `classic` protocol's
transform; NAS trials and the benchmarks' reference loop use it too)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from ganaug.classifier.train import BatchAugment

# (image batch shape, generator) -> a displacement (B, H, W, 2) in grid units added to the sampling grid
Displacement = Callable[[torch.Size, torch.Generator], torch.Tensor]


def random_affine(max_rotation: float, max_scale: float, max_shift: float,
                  displacement: Displacement | None = None) -> BatchAugment:
    """A batch augmentation: per image a uniform random rotation (+-`max_rotation` degrees), zoom
    (+-`max_scale`) and shift (+-`max_shift` of the side), bilinear, border pixels repeat.

    `displacement` (e.g. an elastic distortion) is drawn after the affine parameters and added to the grid.
    """

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # (B, C, H, W) -> same
        n = images.shape[0]
        uniform = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731 - (n,) in [-1, 1)
        angle = uniform() * math.radians(max_rotation)
        scale = 1 + uniform() * max_scale
        shift = torch.stack([uniform(), uniform()], 1) * (2 * max_shift)  # grid coordinates span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
        if displacement is not None:
            grid = grid + displacement(images.shape, generator).to(grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return augment
