"""Evaluate one candidate: train it at a fidelity, return its fitness (a pure, picklable function).

`evaluate_trial` is module-level and takes only picklable arguments, so an executor can run it
in another process or on a Dask worker. Pruning works across that boundary through a
`ganaug.pruning.TrialPruning`: the worker reports every val evaluation (its step is the evaluation's
number) into its trial in the study's storage and Optuna's own pruner makes the call there.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import optuna
import torch
from pydantic import BaseModel, ConfigDict, Field

from ganaug.classifier import ArchSpec, TrainConfig, accuracy, build_classifier, parameter_count, train_classifier
from ganaug.classifier.train import cpu_threads
from ganaug.device import DeviceChoice
from ganaug.nas.augment import affine_augment
from ganaug.pruning import TrialPruning

log = logging.getLogger(__name__)
LATENCY_BATCH = 32


@dataclass(frozen=True)
class TrialData:
    """Training and validation tensors of one fidelity."""

    train_x: torch.Tensor  # (N, C, H, W) float in [-1, 1]
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        _, channels, height, width = self.train_x.shape
        return channels, height, width


class Fidelity(BaseModel):
    """How much training a trial gets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["full", "proxy"] = Field("full", description="Fidelity label recorded with each trial.")
    steps: int | None = Field(None, ge=1, description="Optimizer steps; None = chosen from the training-set size (as in evaluation).")
    eval_every: int | None = Field(None, ge=1, description="Val evaluation (and pruning check) every this many steps; None = 10 per trial.")
    patience: int | None = Field(None, ge=1, description="Stop after this many evaluations without improvement; None = all steps.")
    batch_size: int = Field(64, ge=1, description="Mini-batch size.")
    lr: float = Field(2e-3, gt=0, description="Learning rate.")
    device: DeviceChoice = Field("cpu", description="Training device.")
    cpu_threads: int | None = Field(1, ge=1, description="torch CPU threads while training; None = torch's default.")

    def train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, eval_every=self.eval_every, patience=self.patience, batch_size=self.batch_size,
                           lr=self.lr, device=self.device)


@dataclass(frozen=True)
class TrialResult:
    """What one evaluation produced; `accuracy` is the best val accuracy reached."""

    arch_json: str
    accuracy: float
    parameter_count: int
    state: Literal["complete", "pruned"]
    fidelity: str
    steps_run: int
    seconds: float
    latency_ms: float | None = None
    val_curve: tuple[float, ...] = field(default_factory=tuple)


def measure_latency_ms(model: torch.nn.Module, image_shape: Sequence[int], repeats: int = 7) -> float:
    """Median CPU wall time (ms) of one forward pass on a batch of `LATENCY_BATCH` images."""
    model = model.cpu().eval()
    x = torch.zeros(LATENCY_BATCH, *image_shape)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def evaluate_trial(
    arch: ArchSpec,
    data: TrialData,
    fidelity: Fidelity,
    seed: int = 0,
    prune: TrialPruning | None = None,
    measure_latency: bool = False,
    augment_strength: float = 0.0,
) -> TrialResult:
    """Train `arch` on `data` at `fidelity` (with affine augmentation at `augment_strength`); fitness is the best
    val accuracy (pruned trials stop early)."""
    started = time.perf_counter()
    curve: list[float] = []
    steps_done = [0]
    reporter = prune.reporter("evaluation", "val accuracy") if prune is not None else None

    def on_eval(step: int, val_accuracy: float) -> None:
        curve.append(val_accuracy)
        steps_done[0] = step
        if reporter is not None:
            reporter(len(curve), val_accuracy)

    state: Literal["complete", "pruned"] = "complete"
    try:
        with cpu_threads(fidelity.cpu_threads):
            trained = train_classifier(
                arch, (data.train_x, data.train_y), (data.val_x, data.val_y), data.num_classes,
                fidelity.train_config(), seed=seed, augment=affine_augment(augment_strength), on_eval=on_eval,
            )
        model: torch.nn.Module = trained.model
    except optuna.TrialPruned:
        state = "pruned"
        model = build_classifier(arch, *data.image_shape, data.num_classes)
    with cpu_threads(fidelity.cpu_threads):
        latency = measure_latency_ms(model, data.image_shape) if measure_latency else None
    return TrialResult(
        arch_json=arch.to_json(),
        accuracy=max(curve),
        parameter_count=parameter_count(model),
        state=state,
        fidelity=fidelity.name,
        steps_run=steps_done[0],
        seconds=time.perf_counter() - started,
        latency_ms=latency,
        val_curve=tuple(curve),
    )


@dataclass(frozen=True)
class TrialRunner:
    """A picklable `(arch, prune) -> TrialResult` task bound to one fidelity's data."""

    data: TrialData
    fidelity: Fidelity
    seed: int = 0
    measure_latency: bool = False

    def __call__(self, arch: ArchSpec, prune: TrialPruning | None = None, augment: float = 0.0) -> TrialResult:
        return evaluate_trial(arch, self.data, self.fidelity, self.seed, prune, self.measure_latency, augment)


def score_on_test(
    arch: ArchSpec,
    data: TrialData,
    test: tuple[torch.Tensor, torch.Tensor],
    fidelity: Fidelity,
    seed: int = 0,
    augment: float = 0.0,
) -> float:
    """Retrain `arch` (best val checkpoint kept, affine augmentation at `augment`) and score it once on the test split."""
    with cpu_threads(fidelity.cpu_threads):
        trained = train_classifier(arch, (data.train_x, data.train_y), (data.val_x, data.val_y), data.num_classes,
                                   fidelity.train_config(), seed=seed, augment=affine_augment(augment))
        return accuracy(trained.model, *test)
