"""The classic augmentation baseline: random affine transforms, optionally an elastic distortion."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ganaug.evaluate.config import ClassicAugmentConfig


def elastic_field(shape: torch.Size, alpha: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """A smooth random displacement (B, H, W, 2) in grid units: uniform noise, Gaussian-blurred, `alpha` pixels at most."""
    batch, _, height, width = shape
    noise = torch.rand(batch, 2, height, width, generator=generator) * 2 - 1
    radius = max(1, int(round(2 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = (taps / taps.sum()).to(noise)
    smooth = F.conv2d(noise.reshape(-1, 1, height, width), taps.view(1, 1, 1, -1), padding=(0, radius))
    smooth = F.conv2d(smooth, taps.view(1, 1, -1, 1), padding=(radius, 0)).view(batch, 2, height, width)
    smooth = smooth / smooth.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-8)  # peak displacement = alpha
    pixels_to_grid = torch.tensor([2.0 / width, 2.0 / height]).view(1, 2, 1, 1)
    return (smooth * alpha * pixels_to_grid).permute(0, 2, 3, 1)


def classic_augment(cfg: ClassicAugmentConfig):  # noqa: ANN201 - returns a BatchAugment
    """A batch augmentation: random affine shift, rotation and zoom per image, optionally an elastic
    distortion on top (border pixels repeat)."""

    def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        uniform = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731 - (n,) in [-1, 1)
        angle = uniform() * math.radians(cfg.max_rotation)
        scale = 1 + uniform() * cfg.max_scale
        shift = torch.stack([uniform(), uniform()], 1) * (2 * cfg.max_shift)  # grid coords span 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)  # (B, H, W, 2)
        if cfg.elastic_alpha is not None:
            grid = grid + elastic_field(images.shape, cfg.elastic_alpha, cfg.elastic_sigma, generator).to(grid)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    return augment
