"""Differentiable augmentation in the style of DiffAugment (Zhao et al. 2020).

Applied to real and fake images alike in the discriminator's pass, so D cannot memorise a small
training set while G still receives gradients through the (differentiable) transforms. Every
random draw comes from an explicit `torch.Generator`, which keeps training reproducible.
Images are (B, C, H, W) in [-1, 1]; translated-in and cut-out pixels become 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    return torch.rand(x.size(0), 1, 1, 1, generator=rng, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2, RGB only) and contrast (x0.5..1.5) per image."""
    x = x + (_uniform(x, rng) - 0.5)
    if x.size(1) == 3:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(x, rng) * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, rng) + 0.5) + mean


def translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size in each direction, filling with 0."""
    batch, channels, height, width = x.shape
    max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (batch, 1, 1), generator=rng, device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (batch, 1, 1), generator=rng, device=x.device)
    rows = torch.arange(height, device=x.device).view(1, height, 1) + dy  # (B, H, 1) source rows
    cols = torch.arange(width, device=x.device).view(1, 1, width) + dx  # (B, 1, W) source columns
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)  # (B, H, W)
    index = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)  # (B, H, W)
    index = index.view(batch, 1, height * width).expand(batch, channels, height * width)
    shifted = x.reshape(batch, channels, height * width).gather(2, index).view_as(x)
    return shifted * inside.unsqueeze(1).to(x.dtype)


def cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of `ratio` times the image size per image (it may cross the border)."""
    batch, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), generator=rng, device=x.device) - size_y // 2
    left = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), generator=rng, device=x.device) - size_x // 2
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    hole = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # (B, H, W)
    return x * (~hole).unsqueeze(1).to(x.dtype)


AUGMENTATIONS: dict[str, Augmentation] = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: Sequence[str] | None, rng: torch.Generator,
                 probability: torch.Tensor | None = None) -> torch.Tensor:
    """Apply the named augmentations in the order color, translation, cutout (None/empty = identity).

    With `probability` (a 0-d tensor, as adaptive augmentation keeps it on the device), each
    operation is applied to each image independently with that probability; otherwise to all.
    """
    for name in ("color", "translation", "cutout"):
        if policy and name in policy:
            augmented = AUGMENTATIONS[name](x, rng)
            if probability is None:
                x = augmented
            else:
                chosen = torch.rand(x.size(0), 1, 1, 1, generator=rng, device=x.device) < probability  # (B, 1, 1, 1)
                x = torch.where(chosen, augmented, x)
    return x
