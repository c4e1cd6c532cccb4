"""Affine augmentation at a searchable strength, applied while a trial trains.

Strength 1 is the classic baseline's transform (+-10 degrees, +-10% zoom, +-10% shift, as in
`ganaug.evaluate.augment` and bench/reference.py); 0 is off; other values scale all three ranges.
Written here rather than imported so `ganaug.nas` trials need only torch (the evaluate package
pulls in scipy for its statistics).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ganaug.classifier.train import BatchAugment
from ganaug.errors import ConfigError

MAX_ROTATION_DEGREES = 10.0  # at strength 1
MAX_SCALE = 0.1
MAX_SHIFT = 0.1  # share of the image side
MAX_STRENGTH = 3.0


def affine_augment(strength: float) -> BatchAugment | None:
    """A batch augmentation with random rotation, zoom and shift per image scaled by `strength`; None for 0."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ConfigError(f"augmentation strength must lie in 0..{MAX_STRENGTH:g}, got {strength}")
    if strength == 0.0:
        return None

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:  # (B, C, H, W) -> same
        n = images.shape[0]
        uniform = lambda: torch.rand(n, generator=generator) * 2 - 1
        angle = uniform() * math.radians(MAX_ROTATION_DEGREES * strength)
        scale = 1 + uniform() * MAX_SCALE * strength
        shift = torch.stack([uniform(), uniform()], 1) * (2 * MAX_SHIFT * strength)  # grid coordinates span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return augment
