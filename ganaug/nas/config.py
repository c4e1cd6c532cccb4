"""Configuration of the architecture search stage (`SearchConfig`) and its search space."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ganaug.configbase import StrictModel
from ganaug.device import DeviceChoice

Strategy = Literal["evolution", "random", "tpe", "nsga2", "gan"]
Objective = Literal["params", "latency"]
Mode = Literal["full", "proxy", "proxy-then-verify"]
PrunerChoice = Literal["auto", "median", "halving", "none"]
ProxyChoice = Literal["training", "synflow", "naswot", "grad_norm", "params", "flops", "auto"]
StorageChoice = Literal["journal", "sqlite", "memory"]

# Named search spaces: a preset's choice lists, which a config may still override one by one.
# 'default' is SpaceConfig's own defaults; 'wide' is a space where most samples are poor and search
# has something to find: deeper, wider and narrower blocks, 1x1 and 7x7 kernels, every norm,
# activation and head input, and finer training genes (dropout, augmentation strength).
SPACE_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "wide": {
        "max_blocks": 6, "channels": [8, 16, 24, 32, 48, 64, 96, 128], "kernels": [1, 3, 5, 7],
        "pools": ["max", "avg", "none"], "norms": ["batch", "group", "none"],
        "activations": ["relu", "gelu", "silu", "leaky_relu"], "residual": [False, True],
        "dropouts": [0.0, 0.1, 0.25, 0.4, 0.5], "head_widths": [0, 32, 64, 128, 256],
        "head_inputs": ["flatten", "global_avg"], "augment_strengths": [0.0, 0.25, 0.5, 1.0, 1.5, 2.0],
    },
}


class SpaceConfig(StrictModel):
    """The choices a candidate CNN is built from; every list must hold at least one value.

    `preset` (not stored: the config keeps the lists it stands for) starts from a named space in
    `SPACE_PRESETS`; options given beside it override the preset's.
    """

    min_blocks: int = Field(1, ge=1, le=8, description="Fewest convolution blocks.")
    max_blocks: int = Field(3, ge=1, le=8, description="Most convolution blocks.")
    channels: list[int] = Field([8, 16, 32, 64], min_length=1, description="Output channels a block may have (4..512).")
    kernels: list[Literal[1, 3, 5, 7]] = Field([3, 5], min_length=1, description="Convolution kernel sizes (1, 3, 5, 7).")
    pools: list[Literal["max", "avg", "none"]] = Field(["max", "avg", "none"], min_length=1, description="Pooling after a block; pools beyond what the image size allows become 'none'.")
    norms: list[Literal["batch", "group", "none"]] = Field(["batch", "none"], min_length=1, description="Normalization after each convolution.")
    activations: list[Literal["relu", "gelu", "silu", "leaky_relu"]] = Field(["relu", "silu"], min_length=1, description="Activation functions.")
    residual: list[bool] = Field([False, True], min_length=1, description="Whether a block may be plain (false) and/or residual (true: two convolutions and a skip connection).")
    dropouts: list[float] = Field([0.0, 0.25, 0.5], min_length=1, description="Dropout rates before the output layer (0..0.8).")
    head_widths: list[int] = Field([0, 64, 128], min_length=1, description="Widths of the hidden dense layer (0 = none).")
    head_inputs: list[Literal["flatten", "global_avg"]] = Field(["flatten"], min_length=1, description="What the dense head sees: the flattened last feature map and/or its global average.")
    augment_strengths: list[float] = Field(
        [0.0, 0.5, 1.0], min_length=1,
        description="Affine augmentation strengths a trial may train with (0 = none, 1 = +-10 degrees, +-10% zoom and shift; 0..3).",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "preset" not in data:
            return data
        values = dict(data)
        preset = values.pop("preset")
        if preset not in SPACE_PRESETS:
            raise ValueError(f"space preset must be one of {', '.join(SPACE_PRESETS)}, got {preset!r}")
        return {**SPACE_PRESETS[preset], **values}

    @model_validator(mode="after")
    def _check_values(self) -> SpaceConfig:
        if self.min_blocks > self.max_blocks:
            raise ValueError(f"min_blocks ({self.min_blocks}) must not exceed max_blocks ({self.max_blocks})")
        for name in ("channels", "kernels", "pools", "norms", "activations", "residual", "dropouts", "head_widths",
                     "head_inputs", "augment_strengths"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a value twice: {values}")
        if any(not 4 <= c <= 512 for c in self.channels):
            raise ValueError(f"channels must lie in 4..512, got {self.channels}")
        if any(not 0.0 <= d <= 0.8 for d in self.dropouts):
            raise ValueError(f"dropouts must lie in 0..0.8, got {self.dropouts}")
        if any(not 0 <= w <= 2048 for w in self.head_widths):
            raise ValueError(f"head_widths must lie in 0..2048, got {self.head_widths}")
        if any(not 0.0 <= a <= 3.0 for a in self.augment_strengths):
            raise ValueError(f"augment_strengths must lie in 0..3, got {self.augment_strengths}")
        return self


class SearchConfig(StrictModel):
    """Neural architecture search over the classifier (stage 5)."""

    strategy: Strategy = Field(
        "evolution",
        description="evolution (aging evolution), random, tpe, nsga2 (Optuna's genetic sampler), or gan (a generator of genomes trained against the best trials so far).",
    )
    n_trials: int = Field(20, ge=1, le=100_000, description="Trials in the search (total, counting trials of a resumed study).")
    parallel: int = Field(1, ge=1, le=1024, description="Trials evaluated at once (a batch handed to the executor).")
    population_size: int = Field(6, ge=2, le=10_000, description="Evolution/NSGA-II population size, and the random start of tpe and gan.")
    tournament_size: int = Field(3, ge=1, le=10_000, description="Aging evolution: candidates drawn per tournament.")
    crossover_prob: float = Field(0.3, ge=0.0, le=1.0, description="Aging evolution: chance a child has two parents (uniform crossover) before mutating.")
    gan_top_k: int = Field(5, ge=1, le=10_000, description="gan: best finished trials the discriminator takes as real genomes.")
    gan_retrain_every: int = Field(4, ge=1, le=10_000, description="gan: finished trials between retrainings of the generator.")
    gan_steps: int = Field(30, ge=1, le=10_000, description="gan: training steps (discriminator then generator) per retraining.")
    objectives: list[Objective] = Field([], max_length=2, description="Extra objectives to minimise beside val accuracy: params and/or latency (CPU ms per batch); non-empty = Pareto front.")
    train_data: Literal["augmented", "real", "balanced"] = Field(
        "augmented",
        description="Training set of full-fidelity trials: real + synthetic (at synthetic_ratio), real only, or real + synthetic filling every class up to the largest. The pipeline sets it (and synthetic_ratio) from the evaluation's best use of synthetic data.",
    )
    follow_evaluation: bool = Field(
        True,
        description="In the pipeline, train trials on the data of the evaluation's best use of synthetic data (real only when none helped); false = train_data as given.",
    )
    synthetic_ratio: float | None = Field(
        None, gt=0.0, le=100.0, description="train_data='augmented': synthetic images per real image, per class; None = every synthetic image."
    )
    steps: int | None = Field(None, ge=1, le=1_000_000, description="Full fidelity: optimizer steps per trial; None = as in evaluation (two per training image, 1,000 to 20,000).")
    patience: int | None = Field(None, ge=1, le=1000, description="Stop a trial after this many val evaluations (10 per trial) without improvement; None = train all steps.")
    batch_size: int = Field(64, ge=1, le=8192, description="Mini-batch size for trials and the final retraining.")
    lr: float = Field(2e-3, gt=0.0, le=1.0, description="AdamW learning rate.")
    pruner: PrunerChoice = Field("auto", description="Stop poor trials early: median, halving (successive halving), none; auto = median for one objective, none for several.")
    mode: Mode = Field("full", description="full fidelity, cheap proxy only, or proxy-then-verify (proxy search, top k re-evaluated at full fidelity).")
    proxy_source: Literal["synthetic", "real", "augmented"] = Field("synthetic", description="Proxy fidelity: where its class-balanced training subset comes from.")
    proxy_selection: Literal["random", "confident"] = Field(
        "random",
        description="Proxy training subset per class: a seeded random draw, or (synthetic source) the images with the highest quality_score: confident samples in the spirit of Generative Teaching Networks.",
    )
    proxy_per_class: int = Field(20, ge=1, le=100_000, description="Proxy fidelity: training images per class.")
    proxy_steps: int = Field(200, ge=1, le=1_000_000, description="Proxy fidelity: optimizer steps.")
    proxy: ProxyChoice = Field(
        "training",
        description="What scores a candidate at proxy fidelity: training (proxy_per_class x proxy_steps), a zero-cost score "
                    "at initialisation (synflow, naswot, grad_norm), its size (params, flops), or auto: the one with the best "
                    "measured Spearman among those at least proxy_min_speedup times cheaper than full fidelity (needs correlation_sample).",
    )
    proxy_min_speedup: float = Field(5.0, ge=1.0, le=1e6, description="proxy='auto': least cost ratio (full seconds / proxy seconds) a proxy needs to be chosen.")
    zero_cost_batch: int = Field(64, ge=2, le=4096, description="Training images (class-balanced, seeded) a zero-cost score looks at.")
    verify_top_k: int = Field(3, ge=1, le=1000, description="proxy-then-verify: best proxy trials re-evaluated at full fidelity.")
    correlation_sample: int | None = Field(None, ge=3, le=1000, description="Random architectures scored at both fidelities to measure the proxy's rank correlation; None = off (required for proxy modes).")
    final_steps: int | None = Field(None, ge=1, le=1_000_000, description="Optimizer steps of the best architecture's final retraining (real and augmented); None = as in evaluation.")
    storage: StorageChoice = Field("journal", description="Optuna study storage under nas/: journal file, sqlite database, or memory (not resumable).")
    resume: bool = Field(True, description="Continue a study found in storage (same config) instead of starting over.")
    device: DeviceChoice = Field("cpu", description="Device for trial training: auto, cpu, cuda or mps.")
    cpu_threads: int | None = Field(1, ge=1, le=1024, description="torch CPU threads per trial (small CNNs gain nothing from more; parallel trials do); None = torch's default.")
    seed: int = Field(0, ge=0, description="Seed of the sampler, the trial training and the final retraining.")
    space: SpaceConfig = Field(
        default_factory=SpaceConfig,
        description="The search space: choice lists, a preset name (default, wide), or {preset: wide, ...overrides}.",
    )

    @field_validator("space", mode="before")
    @classmethod
    def _space_by_name(cls, value: Any) -> Any:
        return {"preset": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_combination(self) -> SearchConfig:
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives lists a value twice: {self.objectives}")
        if self.objectives and self.pruner in ("median", "halving"):
            raise ValueError("pruner must be 'auto' or 'none' with several objectives (Optuna's pruners are single-objective)")
        if self.mode != "full" and self.correlation_sample is None:
            raise ValueError(f"mode '{self.mode}' needs correlation_sample (>= 3) so the proxy's rank correlation is measured")
        if self.proxy_selection == "confident" and self.proxy_source != "synthetic":
            raise ValueError(f"proxy_selection 'confident' ranks synthetic images by quality_score; proxy_source is '{self.proxy_source}'")
        if self.proxy == "auto" and self.correlation_sample is None:
            raise ValueError("proxy 'auto' needs correlation_sample (>= 3): the proxy is chosen by its measured rank correlation")
        if self.tournament_size > self.population_size:
            raise ValueError(f"tournament_size ({self.tournament_size}) must not exceed population_size ({self.population_size})")
        return self

    def following(self, protocol: str | None, ratio: float | None, helped: bool) -> SearchConfig:
        """This config with the training data of the evaluation's chosen use of synthetic data.

        Data-level choices carry over (the mix and its ratio, or filling classes up); how a strategy
        trains (loss weights, pre-training, soft targets, affine augmentation) does not: trials
        train on its images plainly.
        """
        if not self.follow_evaluation:
            return self
        if not helped or protocol is None:
            return self.model_copy(update={"train_data": "real", "synthetic_ratio": None})
        if protocol in ("balanced", "balanced_classic", "balanced_mixed"):
            return self.model_copy(update={"train_data": "balanced", "synthetic_ratio": None})
        return self.model_copy(update={"train_data": "augmented", "synthetic_ratio": ratio})

    def directions(self) -> list[str]:
        """Optuna directions: maximise accuracy, minimise each extra objective."""
        return ["maximize"] + ["minimize"] * len(self.objectives)

    def pruner_name(self) -> str:
        """The pruner actually used ('auto' resolved)."""
        if self.pruner == "auto":
            return "none" if self.objectives else "median"
        return self.pruner
