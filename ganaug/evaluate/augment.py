"""The classic augmentation baseline: random affine transforms, optionally an elastic distortion."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ganaug.classifier.augment import random_affine
from ganaug.classifier.train import BatchAugment
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


def classic_augment(cfg: ClassicAugmentConfig) -> BatchAugment:
    """The classic baseline's batch augmentation: the classifier's random affine transform at the configured
    ranges, optionally an elastic distortion on top."""
    if cfg.elastic_alpha is None:
        return random_affine(cfg.max_rotation, cfg.max_scale, cfg.max_shift)
    alpha, sigma = cfg.elastic_alpha, cfg.elastic_sigma
    return random_affine(cfg.max_rotation, cfg.max_scale, cfg.max_shift,
                         lambda shape, generator: elastic_field(shape, alpha, sigma, generator))
