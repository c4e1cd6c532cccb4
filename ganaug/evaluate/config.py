"""Configuration of the downstream evaluation stage."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ganaug.classifier import ArchSpec, TrainConfig
from ganaug.configbase import StrictModel

Protocol = Literal["real", "augmented", "synthetic", "classic"]
PROTOCOLS: tuple[Protocol, ...] = ("real", "augmented", "synthetic", "classic")
SYNTHETIC_PROTOCOLS = frozenset({"augmented", "synthetic"})


class ClassicAugmentConfig(StrictModel):
    """Standard image augmentation of the `classic` baseline: small random affine transforms."""

    max_shift: float = Field(0.1, ge=0.0, le=0.5, description="Largest translation as a share of the image side.")
    max_rotation: float = Field(10.0, ge=0.0, le=45.0, description="Largest rotation in degrees (either direction).")
    max_scale: float = Field(0.1, ge=0.0, le=0.5, description="Largest relative zoom in or out.")
    elastic_alpha: float | None = Field(
        None, gt=0.0, le=100.0,
        description="Elastic distortion (Simard et al. 2003): largest displacement in pixels of a smooth random field; None = off.",
    )
    elastic_sigma: float = Field(3.0, gt=0.0, le=50.0, description="Smoothness (Gaussian sigma in pixels) of the elastic displacement field.")


class EvaluateConfig(StrictModel):
    """Which protocols, ratios, regimes and seeds to run, and how each classifier is trained."""

    protocols: list[Protocol] = Field(
        default_factory=lambda: list(PROTOCOLS), min_length=1, description="Protocols to run: real, augmented, synthetic, classic."
    )
    ratios: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, max_length=16,
        description="Synthetic-to-real ratios of the augmented protocol (per class, relative to the real images kept).",
    )
    synthetic_only_ratio: float = Field(
        1.0, gt=0.0, le=100.0, description="Synthetic images per real training image in the synthetic-only protocol."
    )
    train_fractions: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, max_length=16,
        description="Low-data regimes: share of each class's real training images kept (1.0 = all).",
    )
    seeds: int = Field(3, ge=1, le=100, description="Number of seeds per protocol, ratio and regime.")
    base_seed: int = Field(0, ge=0, le=2**31 - 1, description="First seed; run i uses base_seed + i.")
    arch: ArchSpec = Field(default_factory=ArchSpec, description="Downstream classifier architecture (the NAS spec type).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="How every downstream classifier is trained.")
    classic: ClassicAugmentConfig = Field(default_factory=ClassicAugmentConfig, description="Augmentation of the classic baseline.")
    workers: int | None = Field(
        None, ge=1, le=1024,
        description="Classifiers trained at once on local threads (one torch thread each; results do not depend on it); None = one per CPU core.",
    )
    generative_metrics: bool = Field(True, description="Compute Fréchet distance, precision/recall, density/coverage and GAN-test.")
    metrics_reference_split: Literal["train", "val"] = Field(
        "train", description="Real split the synthetic features are compared with in the generative metrics."
    )
    metrics_max_samples: int = Field(2000, ge=10, le=100_000, description="At most this many real and synthetic samples per generative metric.")
    nearest_k: int = Field(5, ge=1, le=100, description="k of the k-nearest-neighbour balls in precision/recall/density/coverage.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals of paired differences.")

    @field_validator("ratios")
    @classmethod
    def _check_ratios(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0.0 < value <= 100.0:
                raise ValueError(f"every ratio must be in (0, 100], got {value}")
        if len(set(values)) != len(values):
            raise ValueError("ratios must not repeat")
        return values

    @field_validator("train_fractions")
    @classmethod
    def _check_fractions(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0.0 < value <= 1.0:
                raise ValueError(f"every train fraction must be in (0, 1], got {value}")
        if len(set(values)) != len(values):
            raise ValueError("train_fractions must not repeat")
        return values

    @model_validator(mode="after")
    def _check_protocols(self) -> EvaluateConfig:
        if len(set(self.protocols)) != len(self.protocols):
            raise ValueError("protocols must not repeat")
        return self

    def needs_synthetic(self) -> bool:
        """Whether any chosen protocol trains on synthetic images."""
        return bool(SYNTHETIC_PROTOCOLS & set(self.protocols))

    def resolved_workers(self) -> int:
        return self.workers if self.workers is not None else max(1, os.cpu_count() or 1)

    def seed_list(self) -> list[int]:
        return [self.base_seed + i for i in range(self.seeds)]
