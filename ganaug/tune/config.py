"""`TuneConfig`: how `ganaug tune` searches GAN settings, and the search space over `GanConfig`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import Field, model_validator

from ganaug.configbase import StrictModel
from ganaug.gan.config import GanConfig

Pruner = Literal["successive_halving", "hyperband", "none"]
Storage = Literal["sqlite", "memory"]

# Choices of the categorical options; numbers are snapped to the nearest choice when a past config is
# turned into a warm-start trial. 0 stands for "off" (None in GanConfig).
DIFFAUGMENT_POLICIES: dict[str, list[str] | None] = {
    "off": None, "translation": ["translation"], "translation,cutout": ["translation", "cutout"],
    "color,translation,cutout": ["color", "translation", "cutout"],
}
CHOICES: dict[str, list[Any]] = {
    "loss": ["hinge", "bce"],
    "beta1": [0.0, 0.5],
    "beta2": [0.9, 0.99, 0.999],
    "g_width": [16, 32, 64],
    "d_width": [16, 32, 64],
    "diffaugment": list(DIFFAUGMENT_POLICIES),
    "ema_decay": [0.0, 0.99, 0.995, 0.999],
    "mode_seeking": [0.0, 0.3, 1.0, 3.0],
    "lecam_weight": [0.0, 0.01, 0.1, 0.3],
    "lr_schedule": ["constant", "exponential"],
}
RANGES: dict[str, tuple[float, float, bool]] = {  # (low, high, log scale)
    "g_lr": (5e-5, 2e-3, True),
    "d_lr": (1e-4, 4e-3, True),
    "lr_decay_rate": (0.25, 6.0, False),
}


class TuneConfig(StrictModel):
    """An Optuna study over GanConfig whose objective is the val accuracy of a classifier trained on samples."""

    n_trials: int = Field(12, ge=1, le=10_000, description="Trials in total (warm-start trials included).")
    parallel: int = Field(1, ge=1, le=64, description="Trials trained at once (threads); results do not depend on it finishing order.")
    min_steps: int = Field(100, ge=1, le=10_000_000, description="GAN steps of the first rung: every trial is judged (and may be pruned) here first.")
    max_steps: int = Field(400, ge=1, le=10_000_000, description="GAN steps of a trial that is never pruned (the tuned config's steps).")
    reduction_factor: int = Field(2, ge=2, le=10, description="Rungs at min_steps x factor^k; successive halving keeps the best 1/factor at each rung.")
    pruner: Pruner = Field("successive_halving", description="Multi-fidelity pruning on GAN steps: successive halving, Hyperband (brackets that start pruning at later rungs) or none.")
    synthetic_per_class: int = Field(50, ge=2, le=100_000, description="Generated images per class the utility classifier trains on.")
    classifier_steps: int = Field(200, ge=1, le=1_000_000, description="Optimizer steps of the utility classifier (a fixed budget, so trials compare fairly).")
    collapse_penalty: bool = Field(True, description="The objective is CAS on val times the share of classes whose samples are not collapsed (within-class spread below base.collapse_spread of the real val spread); false = CAS alone, which rewards one prototype image per class.")
    warm_start: bool = Field(True, description="Enqueue the best configs of the nearest past datasets in the run history as the first trials.")
    warm_schedule: bool = Field(True, description="With warm_start: first enqueue the base config with the learning rates and schedule learned from the run history for this dataset (ganaug.tune.schedule), when the history has runs to learn from.")
    warm_datasets: int = Field(2, ge=1, le=100, description="Nearest past datasets whose configs seed the study.")
    warm_per_dataset: int = Field(2, ge=1, le=100, description="Best configs taken from each of those datasets.")
    warm_unpruned_rungs: Annotated[int, Field(ge=0, le=30)] | Literal["all"] = Field(
        0, description="With warm_start: the enqueued trials are not pruned at their first N rungs (their readings are still "
                       "recorded and count for the other trials); all = never pruned (each trained to max_steps); 0 = judged like "
                       "any trial from the first rung.")
    history: Path | None = Field(None, description="Run history file; None = $GANAUG_HISTORY, else data/history/gan_runs.parquet.")
    base: GanConfig = Field(default_factory=GanConfig, description="The GanConfig the sampled options are set on (batch size, monitor, device, ...).")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of the sampler, of every trial's GAN (it replaces base.seed) and of the utility classifier.")
    cpu_threads: int | None = Field(1, ge=1, le=256, description="torch CPU threads during the study (process-wide); None = torch's default.")
    storage: Storage = Field("sqlite", description="Where the study is kept: sqlite = <run>/tune/study.db (resumable), memory = not kept.")
    resume: bool = Field(True, description="Continue the study stored in <run>/tune/study.db when there is one (same options bar n_trials, parallel, resume, cpu_threads, same dataset); false = replace it. The same rule as the architecture search's.")

    @model_validator(mode="after")
    def _check(self) -> TuneConfig:
        if self.max_steps < self.min_steps:
            raise ValueError(f"max_steps ({self.max_steps}) must be at least min_steps ({self.min_steps})")
        ratio = self.max_steps / self.min_steps
        levels = round(math.log(ratio, self.reduction_factor)) if ratio > 1 else 0
        if self.min_steps * self.reduction_factor**levels != self.max_steps:
            raise ValueError(f"max_steps ({self.max_steps}) must be min_steps ({self.min_steps}) times a power of "
                             f"reduction_factor ({self.reduction_factor}), e.g. {self.min_steps * self.reduction_factor**max(levels, 1)}")
        return self

    def rungs(self) -> list[int]:
        """GAN steps at which a trial's utility is measured and pruning is considered."""
        steps, rungs = self.min_steps, []
        while steps < self.max_steps:
            rungs.append(steps)
            steps *= self.reduction_factor
        return [*rungs, self.max_steps]

    def make_pruner(self) -> optuna.pruners.BasePruner:
        if self.pruner == "none" or len(self.rungs()) == 1:
            return optuna.pruners.NopPruner()
        if self.pruner == "hyperband":  # brackets 0..len(rungs)-1; the last one never prunes
            return optuna.pruners.HyperbandPruner(min_resource=self.min_steps, max_resource=self.max_steps,
                                                  reduction_factor=self.reduction_factor)
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=self.min_steps, reduction_factor=self.reduction_factor)


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    """Sample one point of the space (plain values, as Optuna stores them)."""
    params: dict[str, Any] = {name: trial.suggest_float(name, low, high, log=log)
                              for name, (low, high, log) in RANGES.items() if name != "lr_decay_rate"}
    for name, options in CHOICES.items():
        params[name] = trial.suggest_categorical(name, options)
    if params["lr_schedule"] == "exponential":
        low, high, log = RANGES["lr_decay_rate"]
        params["lr_decay_rate"] = trial.suggest_float("lr_decay_rate", low, high, log=log)
    return params


def to_gan_config(params: dict[str, Any], base: GanConfig, steps: int) -> GanConfig:
    """The GanConfig of a point of the space: `base` with the sampled options and `steps` set."""
    off = {name: (None if float(params[name]) == 0.0 else float(params[name]))
           for name in ("ema_decay", "mode_seeking", "lecam_weight")}
    values = {**base.model_dump(), "loss": params["loss"], "g_lr": params["g_lr"], "d_lr": params["d_lr"],
              "betas": (params["beta1"], params["beta2"]), "g_width": params["g_width"], "d_width": params["d_width"],
              "diffaugment": DIFFAUGMENT_POLICIES[params["diffaugment"]], **off, "lr_schedule": params["lr_schedule"],
              "steps": steps, "resume": False, "schedule": "fixed"}
    if params["lr_schedule"] == "exponential":
        values["lr_decay_rate"] = params["lr_decay_rate"]
    if values["diffaugment"] is None:
        values["ada_target"] = None
    return GanConfig.model_validate(values)


def _nearest(value: Any, options: list[Any]) -> Any:
    if isinstance(value, str) or any(isinstance(option, str) for option in options):
        return value if value in options else options[0]
    return min(options, key=lambda option: (abs(float(option) - float(value)), float(option)))


def from_gan_config(cfg: GanConfig, height: int, width: int) -> dict[str, Any]:
    """The point of the space closest to a past config (categories snapped, rates clipped): a warm-start trial."""
    g_width, d_width = cfg.widths(height, width)
    policy = next((name for name, ops in DIFFAUGMENT_POLICIES.items() if ops == cfg.diffaugment), None)
    if policy is None:  # another combination: the listed policy with the most operations in common
        policy = max(DIFFAUGMENT_POLICIES, key=lambda name: len(set(DIFFAUGMENT_POLICIES[name] or []) & set(cfg.diffaugment or [])))
    raw = {"loss": cfg.loss if cfg.loss in CHOICES["loss"] else "hinge", "beta1": cfg.betas[0], "beta2": cfg.betas[1],
           "g_width": g_width, "d_width": d_width, "diffaugment": policy, "ema_decay": cfg.ema_decay or 0.0,
           "mode_seeking": cfg.mode_seeking or 0.0, "lecam_weight": cfg.lecam_weight or 0.0,
           "lr_schedule": cfg.lr_schedule if cfg.lr_schedule in CHOICES["lr_schedule"] else "constant"}
    params: dict[str, Any] = {name: _nearest(raw[name], options) for name, options in CHOICES.items()}
    for name in ("g_lr", "d_lr", "lr_decay_rate"):
        low, high, _ = RANGES[name]
        params[name] = min(max(float(getattr(cfg, name)), low), high)
    if params["lr_schedule"] != "exponential":
        del params["lr_decay_rate"]
    return params
