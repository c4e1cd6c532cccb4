"""The project's one affine augmentation for classifier training (the evaluate `classic` protocol's
transform; NAS trials and the benchmarks' reference loop use it too)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ganaug.classifier.train import BatchAugment

# (image batch shape, generator) -> a displacement (B, H, W, 2) in grid units added to the sampling grid
Displacement = Callable[[torch.Size, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class AffineDraw:
    """One batch's random draws: the affine matrices (B, 2, 3) and an optional displacement (B, H, W, 2), on the CPU."""

    theta: torch.Tensor
    displacement: torch.Tensor | None


@dataclass(frozen=True)
class RandomAffine:
    """A batch augmentation (`BatchAugment`): per image a uniform random rotation (+-`max_rotation` degrees),
    zoom (+-`max_scale`) and shift (+-`max_shift` of the side), bilinear, border pixels repeat.

    `displacement` (e.g. an elastic distortion) is drawn after the affine parameters and added to the grid.
    Drawing and warping are separate steps so that the stacked trainer can draw each run's batch from the
    run's own generator and warp every run's images in one call (`apply_affine`): per image the result is the same.
    """

    max_rotation: float
    max_scale: float
    max_shift: float
    displacement: Displacement | None = None

    def draw(self, shape: torch.Size, generator: torch.Generator) -> AffineDraw:
        """The random parameters of a batch of `shape` (B, C, H, W)."""
        n = shape[0]
        uniform = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731 - (n,) in [-1, 1)
        angle = uniform() * math.radians(self.max_rotation)
        scale = 1 + uniform() * self.max_scale
        shift = torch.stack([uniform(), uniform()], 1) * (2 * self.max_shift)  # grid coordinates span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        displacement = self.displacement(shape, generator) if self.displacement is not None else None
        return AffineDraw(theta, displacement)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # (B, C, H, W) -> same
        return apply_affine(images, self.draw(images.shape, generator))


def apply_affine(images: torch.Tensor, drawn: AffineDraw) -> torch.Tensor:
    """Warp images (B, C, H, W) by drawn parameters of as many images."""
    grid = F.affine_grid(drawn.theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
    if drawn.displacement is not None:
        grid = grid + drawn.displacement.to(grid)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(max_rotation: float, max_scale: float, max_shift: float,
                  displacement: Displacement | None = None) -> BatchAugment:
    """The affine batch augmentation at these ranges (`RandomAffine`)."""
    return RandomAffine(max_rotation, max_scale, max_shift, displacement)
