"""Configuration of the downstream evaluation stage."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ganaug.classifier import ArchSpec, TrainConfig
from ganaug.configbase import StrictModel
from ganaug.gan.semi import SemiSupervisedConfig

Protocol = Literal[
    "real", "augmented", "synthetic", "classic",
    "weighted", "pretrain", "augmented_classic", "soft", "balanced", "balanced_classic", "oversampled",
    "balanced_mixed", "self_training", "gan_classifier", "gan_self_training", "semi_augmented",
]
PROTOCOLS: tuple[Protocol, ...] = ("real", "augmented", "synthetic", "classic")
# Ways of using synthetic data that compete for "best use" (selected on val); synthetic-only is the
# classification accuracy score, a measurement rather than a use.
SYNTHETIC_USES: frozenset[str] = frozenset(
    {"augmented", "weighted", "pretrain", "augmented_classic", "soft", "balanced", "balanced_classic", "balanced_mixed",
     "gan_classifier", "gan_self_training", "semi_augmented"}
)
# Protocols that learn from the unlabelled pool (split 'unlabelled' of dataset.parquet): self_training is its
# no-GAN baseline, gan_classifier the semi-supervised GAN's discriminator used as the classifier, and
# gan_self_training self-training whose first teacher is that discriminator, semi_augmented the labelled
# images plus that GAN's generated images labelled by its discriminator (at each of `ratios`).
POOL_PROTOCOLS = frozenset({"self_training", "gan_classifier", "gan_self_training", "semi_augmented"})
# The protocols a run adds by default when the dataset has a pool.
POOL_DEFAULTS: tuple[Protocol, ...] = ("self_training", "gan_classifier", "gan_self_training", "semi_augmented")
# The protocols a run adds by default when the train split has minority classes (`ganaug.data.splits.minority_classes`):
# oversampled is the no-GAN baseline for imbalance, balanced_mixed the use of synthetic images the benchmark found best there.
IMBALANCE_DEFAULTS: tuple[Protocol, ...] = ("oversampled", "balanced_mixed")
# Protocols that fill every class up to the largest with synthetic images (no ratio); balanced_mixed
# fills only `StrategyConfig.fill_synthetic_share` of each gap with them, the rest with repeated real images.
FILLING_PROTOCOLS = frozenset({"balanced", "balanced_classic", "balanced_mixed"})
SYNTHETIC_PROTOCOLS = (SYNTHETIC_USES | {"synthetic"}) - POOL_PROTOCOLS  # the protocols that read synthetic.parquet
# Protocols that train with the classic affine augmentation.
CLASSIC_PROTOCOLS = frozenset({"classic", "augmented_classic", "oversampled", "balanced_classic", "balanced_mixed",
                               "self_training"})
SelectionMetric = Literal["accuracy", "macro_f1"]


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


class SelfTrainingConfig(StrictModel):
    """The self_training baseline: a teacher pseudo-labels the pool, a student trains on labels plus pseudo-labels."""

    rounds: int = Field(3, ge=1, le=20, description="Most teacher -> student rounds; the round kept is the best on val (round 0 = the teacher).")
    thresholds: list[float] = Field(
        default_factory=lambda: [0.9, 0.95, 0.99], min_length=1, max_length=8,
        description="Confidence thresholds tried for the pseudo-labels; the one kept is chosen on val.",
    )
    class_balance: bool = Field(
        True, description="Keep at most as many pseudo-labels per class as the class with the fewest confident ones has (most confident first)."
    )
    pool_max_samples: int | None = Field(
        None, ge=1, le=10_000_000, description="Pseudo-label at most this many pool images (a fixed random subset); None = all."
    )
    augment: Literal["auto", "classic", "none"] = Field(
        "auto",
        description="The batch augmentation of the teacher and every student: classic (the classic protocol's affine transform), "
                    "none, or auto: the first teacher is trained both ways and the better on val is kept (classic on a tie), its "
                    "augmentation used by every student. gan_self_training makes the same choice the same way (its first teacher "
                    "stays the discriminator), so the two protocols still differ only in their first teacher.",
    )
    student_steps: int | None = Field(
        3000, ge=1, le=10_000_000,
        description="Optimizer steps of each student (3,000 measured on MNIST with 10 labels per class and a 50,900-image pool: "
                    "0.977 test accuracy, docs/benchmarks/semi_supervised.md); None = the train config's rule applied to the "
                    "labelled plus pseudo-labelled images (up to 20,000).",
    )

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, values: list[float]) -> list[float]:
        for value in values:
            if not 0.0 < value < 1.0:
                raise ValueError(f"every threshold must be in (0, 1), got {value}")
        if len(set(values)) != len(values):
            raise ValueError("thresholds must not repeat")
        return values


class StrategyConfig(StrictModel):
    """Settings of the ways of using synthetic data beyond plain mixing (protocols other than real/classic/augmented)."""

    ratio: float = Field(1.0, gt=0.0, le=100.0, description="Synthetic images per real image, per class, for weighted, augmented_classic and soft.")
    synthetic_weight: float = Field(0.5, gt=0.0, le=10.0, description="weighted: loss weight of a synthetic image (a real image weighs 1).")
    pretrain_share: float = Field(0.5, gt=0.0, lt=1.0, description="pretrain: share of the step budget spent on synthetic images before fine-tuning on real ones.")
    soft_label_mix: float = Field(0.5, ge=0.0, le=1.0, description="soft: weight of a real-trained teacher's predicted distribution in a synthetic image's target (the rest is its label).")
    min_confidence: float | None = Field(
        None, gt=0.0, lt=1.0, description="soft: drop synthetic images whose label the teacher gives less than this probability; None = keep all."
    )
    fill_synthetic_share: float = Field(
        0.5, gt=0.0, le=1.0,
        description="balanced_mixed: share of each class's gap to the largest class filled with synthetic images; the rest repeats "
                    "the class's real images (1.0 = balanced_classic; oversampled is the no-GAN end).",
    )


class EvaluateConfig(StrictModel):
    """Which protocols, ratios, regimes and seeds to run, and how each classifier is trained."""

    protocols: list[Protocol] = Field(
        default_factory=lambda: list(PROTOCOLS), min_length=1,
        description="Protocols to run: real, classic (affine), augmented (real + synthetic at each ratio), synthetic (only), "
                    "weighted (synthetic down-weighted in the loss), pretrain (on synthetic, then fine-tune on real), "
                    "augmented_classic (real + synthetic, affine on both), soft (synthetic targets from a real-trained teacher), "
                    "balanced (synthetic fills every class up to the largest), balanced_classic (the same, affine on all images), oversampled (real images of smaller classes "
                    "repeated up to the largest, with affine augmentation: the no-GAN baseline for imbalance), balanced_mixed (each class's gap "
                    "filled partly with synthetic images, partly with repeated real ones: strategy.fill_synthetic_share; affine on all).",
    )
    ratios: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1, max_length=16,
        description="Synthetic-to-real ratios of the augmented and semi_augmented protocols (per class, relative to the real images kept).",
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
    strategy: StrategyConfig = Field(default_factory=StrategyConfig, description="Settings of the other ways of using synthetic data.")
    self_training: SelfTrainingConfig = Field(default_factory=SelfTrainingConfig, description="The self_training baseline (needs a pool).")
    semi_supervised: SemiSupervisedConfig = Field(
        default_factory=SemiSupervisedConfig, description="The semi-supervised GAN trained by the gan_classifier protocol (needs a pool)."
    )
    selection_metric: SelectionMetric = Field(
        "accuracy", description="What picks the best use of synthetic data on val (and what the paired intervals compare): accuracy, or macro_f1 for imbalanced data."
    )
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
    stack: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Train runs that share an architecture and step budget (seeds x protocols) as one stacked ensemble (torch.func; "
                    "each run's results equal its separate run up to float rounding): on, off, or auto = on a CUDA GPU only "
                    "(measured on CPU: stacked is slower than runs side by side on threads).",
    )

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
