"""A JSON-serializable CNN architecture spec and the builder that turns it into an `nn.Module`.

The same spec type is what the evaluation stage trains and what NAS searches over.
Convolutions keep the spatial size ('same' padding); only pooling halves it, and the builder
refuses a spec that would pool an image below 1x1, so every valid spec builds.
"""

from __future__ import annotations

import json
import math
from typing import Literal

import torch
from pydantic import ConfigDict, Field
from torch import nn

from ganaug.configbase import StrictModel
from ganaug.errors import ConfigError

Activation = Literal["relu", "gelu", "silu", "leaky_relu"]
Norm = Literal["batch", "group", "none"]
Pool = Literal["max", "avg", "none"]
HeadInput = Literal["flatten", "global_avg"]
MAX_FLATTEN_SIDE = 8  # flatten maps of at most 8x8: larger maps are average-pooled down to it


class ConvBlockSpec(StrictModel):
    """One conv block: conv(kernel, 'same') -> norm -> activation [-> pool /2], or a residual block before the pool."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: int = Field(32, ge=4, le=512, description="Output channels of the block's convolution.")
    kernel: Literal[1, 3, 5, 7] = Field(3, description="Convolution kernel size (odd; padding keeps the spatial size).")
    pool: Pool = Field("max", description="Pooling after the block, halving height and width; 'none' keeps them.")
    residual: bool = Field(
        False,
        description="A residual block: two convolutions with a skip connection (1x1 projection when the channels change) before the pool.",
    )


class ArchSpec(StrictModel):
    """A CNN classifier: conv blocks, global average pooling, a dense head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blocks: tuple[ConvBlockSpec, ...] = Field(
        default=(ConvBlockSpec(channels=32), ConvBlockSpec(channels=64)),
        min_length=1,
        max_length=8,
        description="Convolution blocks in order.",
    )
    norm: Norm = Field("batch", description="Normalization after each convolution.")
    activation: Activation = Field("relu", description="Activation function used throughout.")
    head_input: HeadInput = Field(
        "flatten",
        description="What the dense head sees: the flattened last feature map (average-pooled to at most 8x8), or its global average.",
    )
    dropout: float = Field(0.25, ge=0.0, le=0.8, description="Dropout before the output layer.")
    head_width: int = Field(128, ge=0, le=2048, description="Width of the hidden dense layer; 0 = no hidden layer.")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        return cls.model_validate_json(text)

    def pool_count(self) -> int:
        return sum(block.pool != "none" for block in self.blocks)


def max_pools(height: int, width: int) -> int:
    """How many halvings an image of this size can take before a side reaches 1."""
    return int(math.floor(math.log2(max(1, min(height, width)))))


def _activation(name: Activation) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}[name]()


def _norm(name: Norm, channels: int) -> nn.Module:
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(num_groups=math.gcd(8, channels), num_channels=channels)
    return nn.Identity()


class SeededDropout(nn.Module):
    """Dropout that draws its mask from `self.generator` when one is set.

    Trials and protocol runs fan out on threads; with the global generator their masks would
    interleave and results would depend on scheduling. The trainer hands each model its own.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """`keep`, a 0/1 mask of x's shape drawn as `draw_keep` draws it, replaces the draw (the stacked trainer
        draws each run's masks outside `torch.func.vmap`, where a module cannot use its own generator)."""
        if not self.training or self.p == 0.0:
            return x
        if keep is None:
            keep = self.draw_keep(x.shape, x.dtype, x.device)
        return x * keep / (1.0 - self.p)

    def draw_keep(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A 0/1 mask, 1 with probability 1 - p, from `self.generator`."""
        return torch.empty(shape, dtype=dtype, device=device).bernoulli_(1.0 - self.p, generator=self.generator)


class ResidualBlock(nn.Module):
    """conv -> norm -> act -> conv -> norm, plus the input (projected by a 1x1 conv when widths differ), -> act."""

    def __init__(self, in_channels: int, block: ConvBlockSpec, norm: Norm, activation: Activation) -> None:
        super().__init__()
        pad, bias = block.kernel // 2, norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, block.channels, block.kernel, padding=pad, bias=bias), _norm(norm, block.channels),
            _activation(activation),
            nn.Conv2d(block.channels, block.channels, block.kernel, padding=pad, bias=bias), _norm(norm, block.channels),
        )
        self.skip: nn.Module = nn.Identity()
        if in_channels != block.channels:
            self.skip = nn.Sequential(nn.Conv2d(in_channels, block.channels, 1, bias=bias), _norm(norm, block.channels))
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H, W)
        return self.activation(self.body(x) + self.skip(x))


class Classifier(nn.Module):
    """Feature extractor (conv blocks + GAP + hidden layer) and a linear output layer."""

    def __init__(self, spec: ArchSpec, channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = channels
        for block in spec.blocks:
            if block.residual:
                layers.append(ResidualBlock(in_channels, block, spec.norm, spec.activation))
            else:
                layers += [
                    nn.Conv2d(in_channels, block.channels, block.kernel, padding=block.kernel // 2, bias=spec.norm == "none"),
                    _norm(spec.norm, block.channels),
                    _activation(spec.activation),
                ]
            if block.pool == "max":
                layers.append(nn.MaxPool2d(2))
            elif block.pool == "avg":
                layers.append(nn.AvgPool2d(2))
            in_channels = block.channels
        height, width = _pooled_size(spec, height, width)
        if spec.head_input == "flatten":
            height, width = min(height, MAX_FLATTEN_SIDE), min(width, MAX_FLATTEN_SIDE)
            layers += [nn.AdaptiveAvgPool2d((height, width)), nn.Flatten()]  # identity when the map is small
            in_channels *= height * width
        else:
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if spec.head_width:
            layers += [nn.Linear(in_channels, spec.head_width), _activation(spec.activation)]
            in_channels = spec.head_width
        self.features = nn.Sequential(*layers)
        self.dropout = SeededDropout(spec.dropout)
        self.output = nn.Linear(in_channels, num_classes)
        self.feature_dim = in_channels

    def forward(self, x: torch.Tensor, dropout_keep: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) -> logits (B, K); `dropout_keep` (B, feature_dim): a drawn dropout mask (`SeededDropout`)."""
        return self.output(self.dropout(self.features(x), dropout_keep))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, feature_dim), used for FID and precision/recall."""
        return self.features(x)


def _pooled_size(spec: ArchSpec, height: int, width: int) -> tuple[int, int]:
    for _ in range(spec.pool_count()):
        height, width = height // 2, width // 2
    return height, width


def build_classifier(spec: ArchSpec, channels: int, height: int, width: int, num_classes: int) -> Classifier:
    """Build the module for `spec` on images of (channels, height, width)."""
    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
    allowed = max_pools(height, width)
    if spec.pool_count() > allowed:
        raise ConfigError(
            f"architecture pools {spec.pool_count()} times but {height}x{width} images allow at most {allowed}; "
            "set pool='none' on some blocks"
        )
    return Classifier(spec, channels, height, width, num_classes)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
