"""Train a classifier for a budget of optimizer steps, keep the best val checkpoint; predict; embed.

Budgets are optimizer steps with a one-cycle learning-rate schedule, never epochs: an epoch of
100 images is two batches, so "30 epochs" leaves a network under-trained on small data while the
same number means hours on large data. Every `eval_every` steps the model is scored on (a bounded,
fixed subset of) the val split and the best weights are restored at the end.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ganaug.classifier.spec import ArchSpec, Classifier, build_classifier
from ganaug.configbase import StrictModel
from ganaug.device import WEIGHT_INIT_LOCK, DeviceChoice, select_device
from ganaug.errors import DataError

log = logging.getLogger(__name__)

_INIT_LOCK = WEIGHT_INIT_LOCK  # see ganaug.device

# (images (B, C, H, W), generator) -> augmented images of the same shape
BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# (step, val_accuracy) -> None; may raise (e.g. optuna.TrialPruned) to stop a trial early
EvalCallback = Callable[[int, float], None]
Precision = Literal["auto", "float32", "bfloat16"]

MIN_AUTO_STEPS = 1000
MAX_AUTO_STEPS = 20_000
AUTO_EVALUATIONS = 10


def auto_steps(train_size: int) -> int:
    """The default step budget: two steps per training image, within [1,000, 20,000].

    Measured against a plain reference CNN (bench/reference.py): 1,000 steps converge on 100 MNIST
    images, 2,000 on 1,000; 20,000 steps of 64 are ~25 epochs of 50,000 images.
    """
    return int(min(MAX_AUTO_STEPS, max(MIN_AUTO_STEPS, 2 * train_size)))


class TrainConfig(StrictModel):
    """How a classifier is trained (shared by evaluation, generation's filter, metrics and NAS)."""

    steps: int | None = Field(
        None, ge=1, le=10_000_000,
        description="Optimizer steps; None = two per training image, between 1,000 and 20,000 (converges from ~50 to ~50,000 images).",
    )
    batch_size: int = Field(64, ge=2, le=8192, description="Mini-batch size (images per step; the whole set when it is smaller).")
    lr: float = Field(2e-3, gt=0, le=1.0, description="Peak AdamW learning rate of the one-cycle schedule.")
    warmup: float = Field(0.3, ge=0.0, lt=1.0, description="Share of the steps spent warming the learning rate up (one-cycle), the rest is a cosine decay.")
    weight_decay: float = Field(1e-2, ge=0, le=1.0, description="AdamW weight decay.")
    eval_every: int | None = Field(
        None, ge=1, le=10_000_000, description="Score val every this many steps (and at the last step); None = 10 times per run."
    )
    val_max_samples: int | None = Field(
        2000, ge=10, le=10_000_000, description="Score at most this many val images (a fixed subset) at each evaluation; None = all."
    )
    patience: int | None = Field(
        None, ge=1, le=1000, description="Stop after this many evaluations without a better val accuracy; None = run every step."
    )
    precision: Precision = Field(
        "auto", description="Arithmetic of training: bfloat16 autocast where the hardware has it natively (CUDA, CPUs with AVX-512 BF16/AMX), else float32."
    )
    device: DeviceChoice = Field("auto", description="Device: auto (cuda, mps, cpu), cpu, cuda or mps.")

    def steps_for(self, train_size: int) -> int:
        """The step budget for a training set of this size."""
        return self.steps if self.steps is not None else auto_steps(train_size)

    def eval_interval(self, steps: int) -> int:
        return self.eval_every if self.eval_every is not None else max(1, math.ceil(steps / AUTO_EVALUATIONS))


@dataclass(frozen=True)
class SampleOptions:
    """Per-image extras of a training set: loss weights, soft targets, and weights to start from."""

    weights: torch.Tensor | None = None  # (N,) loss weight per training image
    soft_targets: torch.Tensor | None = None  # (N, K) target distribution per image, instead of its label
    init_state: dict[str, torch.Tensor] | None = None  # a state_dict of the same architecture (fine-tuning)


@dataclass
class TrainedClassifier:
    """A trained model (best val checkpoint restored) and its history."""

    model: Classifier
    best_step: int
    best_val_accuracy: float
    steps_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _check_data(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or len(x) != len(y):
        raise DataError(f"{name} set must be images (N, C, H, W) with N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0:
        raise DataError(f"{name} set is empty")


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """bfloat16 where `precision` asks for it (or 'auto' finds native support), None for float32."""
    if precision == "float32" or device.type == "mps":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    native = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return torch.bfloat16 if native else None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Use `threads` torch CPU threads inside the block (None = leave as is), then restore the setting.

    The setting is process-wide: concurrent trainings should all ask for the same count.
    """
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Logits (N, K) on the CPU, computed in eval mode on the model's device (float32 unless `dtype`)."""
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    for i in range(0, len(x), batch_size):
        with _autocast(device, dtype):
            outputs.append(model(x[i : i + batch_size].to(device)).float().cpu())
    return torch.cat(outputs)


@torch.no_grad()
def embed(model: Classifier, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Penultimate-layer features (N, D) on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model.embed(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of `model` on images `x` with labels `y`, in float32."""
    return accuracy_of(model, (x, y))


def one_cycle(steps: int, warmup: float) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up from 1/25 to 1, then cosine down to ~0."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < warm:
            return 0.04 + 0.96 * step / warm
        progress = (step - warm) / max(1, steps - warm)
        return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _val_subset(val: tuple[torch.Tensor, torch.Tensor], limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed subset (independent of the run's seed) so every run is judged on the same images."""
    x, y = val
    if limit is None or len(x) <= limit:
        return x, y
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:limit].sort().values
    return x[keep], y[keep]


class _Batches:
    """Shuffled passes over the training set; a pass's last partial batch is dropped (BN needs >1)."""

    def __init__(self, size: int, batch_size: int, generator: torch.Generator, device: torch.device) -> None:
        self.size, self.batch = size, min(batch_size, size)
        self.generator, self.device = generator, device
        self.order, self.position = torch.empty(0, dtype=torch.int64), size

    def next(self) -> torch.Tensor:
        if self.position + self.batch > self.size:
            self.order, self.position = torch.randperm(self.size, generator=self.generator).to(self.device), 0
        index = self.order[self.position : self.position + self.batch]
        self.position += self.batch
        return index


def train_classifier(
    spec: ArchSpec,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    num_classes: int,
    cfg: TrainConfig | None = None,
    seed: int = 0,
    augment: BatchAugment | None = None,
    on_eval: EvalCallback | None = None,
    options: SampleOptions | None = None,
) -> TrainedClassifier:
    """Train `spec` on `train` for the step budget; keep the weights of the best val evaluation."""
    cfg = cfg or TrainConfig()
    options = options or SampleOptions()
    val = _checked_inputs(train, val, num_classes, cfg, options)
    run = _Run(spec, train, val, num_classes, cfg, seed, options)
    for step in range(1, run.steps + 1):
        run.train_step(augment)
        if step % run.eval_every and step != run.steps:
            continue
        val_accuracy = run.evaluate(step)
        if on_eval is not None:
            on_eval(step, val_accuracy)
        if cfg.patience is not None and run.evaluations_since_best >= cfg.patience:
            break
    return run.finish(spec)


def _checked_inputs(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None,
                    num_classes: int, cfg: TrainConfig, options: SampleOptions) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Raise DataError on unusable inputs; return the val subset that is scored."""
    _check_data(*train, "training")
    _check_options(options, len(train[0]), num_classes)
    if len(train[0]) < 2:
        raise DataError("the training set needs at least 2 images (batch norm cannot normalise one)")
    if val is None:
        return None
    _check_data(*val, "validation")
    return _val_subset(val, cfg.val_max_samples)


class _Run:
    """One classifier's training state: model, optimizer, schedule, batches, best checkpoint, history.

    With `stacked`, the stacked trainer (`ganaug.classifier.stacked`) holds the training images, the
    parameters being trained and the optimizer of several runs; this one keeps the rest (seeded model,
    generators, batch order, evaluation, best checkpoint), and its model is brought up to date before evaluating.
    """

    def __init__(self, spec: ArchSpec, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None,
                 num_classes: int, cfg: TrainConfig, seed: int, options: SampleOptions, stacked: bool = False) -> None:
        x_train, y_train = train
        self.device = device = select_device(cfg.device)
        self.dtype = autocast_dtype(cfg.precision, device)
        self.steps = cfg.steps_for(len(x_train))
        self.eval_every = cfg.eval_interval(self.steps)
        self.generator = torch.Generator().manual_seed(seed)
        with _INIT_LOCK:
            torch.manual_seed(seed)
            model = build_classifier(spec, *x_train.shape[1:], num_classes)
        if options.init_state is not None:
            model.load_state_dict(options.init_state)
        # channels-last convolutions are faster with oneDNN (CPU) and cuDNN (GPU)
        self.model = model.to(device, memory_format=torch.channels_last)
        self.model.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)
        if not stacked:
            self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, one_cycle(self.steps, cfg.warmup))
            self.x = x_train.to(device).contiguous(memory_format=torch.channels_last)  # (N, C, H, W)
            self.y = y_train.to(device)
            self.weights = options.weights.to(device) if options.weights is not None else None
            self.soft = options.soft_targets.to(device) if options.soft_targets is not None else None
        self.val = (val[0].to(device).contiguous(memory_format=torch.channels_last), val[1]) if val is not None else None
        self.batches = _Batches(len(x_train), cfg.batch_size, self.generator, device)
        self.best = (-1.0, 0, copy.deepcopy(self.model.state_dict()))
        self.history: list[dict[str, float]] = []
        self.evaluations_since_best, self.step = 0, 0
        self.loss_sum, self.loss_count = torch.zeros((), device=device), 0
        self.started = time.perf_counter()

    def train_step(self, augment: BatchAugment | None) -> None:
        self.model.train()
        index = self.batches.next()
        images = self.x[index] if augment is None else augment(self.x[index], self.generator)
        with _autocast(self.device, self.dtype):
            logits = self.model(images)
        loss = _loss(logits.float(), self.y[index], self.weights[index] if self.weights is not None else None,
                     self.soft[index] if self.soft is not None else None)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.loss_sum, self.loss_count, self.step = self.loss_sum + loss.detach(), self.loss_count + 1, self.step + 1

    def evaluate(self, step: int, lr: float | None = None) -> float:
        """Score val, record the history line, keep the weights when they are the best so far.

        `lr`: the learning rate now, when another optimizer than this run's own trains it (stacked)."""
        val_accuracy = accuracy_of(self.model, self.val, self.dtype) if self.val is not None else float("nan")
        self.history.append({"step": step, "train_loss": float(self.loss_sum / max(self.loss_count, 1)),
                             "val_accuracy": val_accuracy, "lr": self.scheduler.get_last_lr()[0] if lr is None else lr})
        self.loss_sum, self.loss_count = torch.zeros((), device=self.device), 0
        if self.val is None or val_accuracy >= self.best[0]:  # on a tie the later, further annealed weights win
            self.best, self.evaluations_since_best = (val_accuracy, step, copy.deepcopy(self.model.state_dict())), 0
        else:
            self.evaluations_since_best += 1
        return val_accuracy

    def finish(self, spec: ArchSpec) -> TrainedClassifier:
        accuracy_kept, best_step, state = self.best
        self.model.load_state_dict(state)
        self.model.eval()
        log.debug("trained %s for %d steps, best val accuracy %.4f at step %d", spec.to_json(), self.step, accuracy_kept, best_step)
        return TrainedClassifier(self.model, best_step, accuracy_kept, self.step, time.perf_counter() - self.started,
                                 self.history)


def _loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
          soft_targets: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy against labels or soft targets, a weighted mean over the batch."""
    if soft_targets is not None:
        per_image = -(soft_targets * torch.log_softmax(logits, dim=1)).sum(dim=1)
    else:
        per_image = nn.functional.cross_entropy(logits, labels, reduction="none")
    if weights is None:
        return per_image.mean()
    return (per_image * weights).sum() / weights.sum().clamp_min(1e-12)


def _check_options(options: SampleOptions, count: int, num_classes: int) -> None:
    if options.weights is not None and (options.weights.shape != (count,) or bool((options.weights < 0).any())):
        raise DataError(f"sample weights must be {count} non-negative numbers, got shape {tuple(options.weights.shape)}")
    if options.soft_targets is not None and options.soft_targets.shape != (count, num_classes):
        raise DataError(f"soft targets must be ({count}, {num_classes}), got {tuple(options.soft_targets.shape)}")


def accuracy_of(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], dtype: torch.dtype | None = None) -> float:
    """Accuracy of `model` on (images, labels), computed in `dtype` autocast (None = float32)."""
    x, y = data
    return float((predict_logits(model, x, dtype=dtype).argmax(1) == y.cpu()).float().mean())
