"""Class-conditional generator and discriminator sized from explicit image dimensions.

Both networks work on a pyramid: the generator starts at a base resolution and doubles it
`levels` times; the discriminator halves the image the same number of times. For 8x8 the base is
4x4 (one level), 28x28 -> 7x7 (two), 32x32 -> 4x4 (three), 64x64 -> 4x4 (four).

Widths follow DCGAN: the generator has `g_width` channels at full resolution and twice as many at
each coarser level (at most 8x), so it never thins out towards the image; the discriminator has
`d_width` at full resolution and doubles per downsampling (at most 8x). `default_widths` picks both
from the image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ganaug.errors import ConfigError

MIN_BASE = 3  # smallest side of the lowest-resolution feature map


@dataclass(frozen=True)
class ImageShape:
    """Channels, height, width and class count a GAN is built for."""

    channels: int
    height: int
    width: int
    num_classes: int


def pyramid_levels(height: int, width: int) -> int:
    """How many times both sides can be halved exactly while staying at least `MIN_BASE` (at most 6)."""
    levels = 0
    while levels < 6 and height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= MIN_BASE:
        height, width, levels = height // 2, width // 2, levels + 1
    return levels


def default_widths(height: int, width: int) -> tuple[int, int]:
    """(g_width, d_width) for an image size: 32 and 32 at full resolution, measured at 8x8 and 28x28.

    The networks still grow with the image: each extra pyramid level doubles the channels towards
    the generator's base and the discriminator's output (8x8: G 64 -> 32; 28x28: G 128 -> 64 -> 32,
    D 32 -> 64 -> 128). At 28x28, g_width 64 trained no better (docs/benchmarks/gan.md) and costs
    about 1.5x the FLOPs per step on a CPU; sizes above 28x28 use the same widths until measured.
    """
    del height, width  # one choice for every size measured so far
    return 32, 32


def generator_channels(levels: int, width: int) -> list[int]:
    """Channels from the base resolution to full resolution: width * 2^levels, ..., width (at most 8x width)."""
    return [width * min(1 << (levels - i), 8) for i in range(levels + 1)]


def discriminator_channels(levels: int, width: int) -> list[int]:
    """Channels from full resolution down to the base: width, 2 width, ... (at most 8x width)."""
    return [width * min(1 << i, 8) for i in range(levels + 1)]


def _check_shape(shape: ImageShape) -> None:
    if shape.channels not in (1, 3):
        raise ConfigError(f"GAN images must have 1 or 3 channels, got {shape.channels}")
    if min(shape.height, shape.width) < 4 or max(shape.height, shape.width) > 1024:
        raise ConfigError(f"GAN images must be between 4 and 1024 pixels per side, got {shape.height}x{shape.width}")
    if shape.num_classes < 1:
        raise ConfigError("the dataset has no classes; a conditional GAN needs at least one")


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine terms, followed by a per-class scale and shift."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = self.gain(labels)[:, :, None, None]  # (B, C, 1, 1)
        bias = self.bias(labels)[:, :, None, None]
        return self.norm(x) * gain + bias


class Generator(nn.Module):
    """z (B, latent_dim) and labels (B,) -> images (B, C, H, W) in [-1, 1]; `width` = channels at full resolution."""

    def __init__(self, latent_dim: int, shape: ImageShape, width: int) -> None:
        super().__init__()
        _check_shape(shape)
        self.latent_dim = latent_dim
        self.shape = shape
        levels = pyramid_levels(shape.height, shape.width)
        self.base = (shape.height >> levels, shape.width >> levels)
        chans = generator_channels(levels, width)
        self.embed = nn.Embedding(shape.num_classes, latent_dim)
        self.project = nn.Linear(2 * latent_dim, chans[0] * self.base[0] * self.base[1])
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(c, shape.num_classes) for c in chans)
        # ConvTranspose(k=4, s=2, p=1) doubles each side exactly, as in DCGAN.
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(chans[i], chans[i + 1], 4, stride=2, padding=1, bias=False) for i in range(levels)
        )
        self.to_image = nn.Conv2d(chans[-1], shape.channels, 3, padding=1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(torch.cat([z, self.embed(labels)], dim=1))
        h = h.view(len(z), -1, *self.base)  # (B, C0, h0, w0)
        for norm, up in zip(self.norms, self.ups):
            h = up(torch.relu(norm(h, labels)))
        h = torch.relu(self.norms[-1](h, labels))
        return torch.tanh(self.to_image(h))  # (B, C, H, W)


class Discriminator(nn.Module):
    """images (B, C, H, W) and labels (B,) -> (logits (B,), class logits (B, K) or None)."""

    def __init__(self, shape: ImageShape, width: int, spectral_norm: bool, conditioning: str,
                 minibatch_std: bool = False) -> None:
        super().__init__()
        _check_shape(shape)
        if conditioning not in ("projection", "acgan"):
            raise ConfigError(f"conditioning must be 'projection' or 'acgan', got '{conditioning}'")
        self.shape = shape
        self.conditioning = conditioning
        self.minibatch_std = minibatch_std
        levels = pyramid_levels(shape.height, shape.width)
        chans = discriminator_channels(levels, width)
        sn = _spectral_norm if spectral_norm else (lambda module: module)
        self.from_image = sn(nn.Conv2d(shape.channels, chans[0], 3, padding=1))
        self.downs = nn.ModuleList(sn(nn.Conv2d(chans[i], chans[i + 1], 4, stride=2, padding=1)) for i in range(levels))
        self.last = sn(nn.Conv2d(chans[-1] + int(minibatch_std), chans[-1], 3, padding=1))
        self.linear = sn(nn.Linear(chans[-1], 1))
        if conditioning == "projection":
            self.embed = sn(nn.Embedding(shape.num_classes, chans[-1]))
        else:
            self.classify = sn(nn.Linear(chans[-1], shape.num_classes))

    def forward(self, x: torch.Tensor, labels: torch.Tensor,
                part_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`part_size`: the batch is made of independent parts of this size (e.g. reals then fakes);
        minibatch-std groups never cross a part."""
        act = nn.functional.leaky_relu
        h = act(self.from_image(x), 0.2)
        for down in self.downs:
            h = act(down(h), 0.2)
        if self.minibatch_std:
            h = torch.cat([h, minibatch_stddev(h, math.gcd(4, part_size or len(h)))], dim=1)
        h = act(self.last(h), 0.2).sum(dim=(2, 3))  # (B, C_last): sum pooling as in SNGAN
        logits = self.linear(h).squeeze(1)  # (B,)
        if self.conditioning == "projection":
            return logits + (self.embed(labels) * h).sum(dim=1), None
        return logits, self.classify(h)


def minibatch_stddev(h: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B, 1, H, W): within each group of consecutive samples, the mean feature std (Karras et al. 2018).

    A collapsed generator gives near-identical samples, so this feature lets D spot it.
    """
    batch, channels, height, width = h.shape
    groups = h.float().view(batch // group_size, group_size, channels, height, width)
    std = groups.var(dim=1, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # (B / group,)
    return std.to(h.dtype).repeat_interleave(group_size).view(batch, 1, 1, 1).expand(batch, 1, height, width)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
