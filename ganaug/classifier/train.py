"""Train a classifier with early stopping on a validation set; predict; embed."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ganaug.classifier.spec import ArchSpec, Classifier, build_classifier
from ganaug.configbase import StrictModel
from ganaug.device import DeviceChoice, select_device
from ganaug.errors import DataError

log = logging.getLogger(__name__)

# Weight initialisation draws from torch's global generator; holding this lock from seeding to the
# end of construction keeps concurrent trainings (thread task runners) reproducible.
_INIT_LOCK = threading.Lock()

# (images (B, C, H, W), generator) -> augmented images of the same shape
BatchAugment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
# (epoch, val_accuracy) -> None; may raise (e.g. optuna.TrialPruned) to stop a trial early
EpochCallback = Callable[[int, float], None]


class TrainConfig(StrictModel):
    """How a classifier is trained (shared by evaluation and architecture search)."""

    epochs: int = Field(30, ge=1, le=1000, description="Maximum training epochs.")
    batch_size: int = Field(64, ge=1, le=8192, description="Mini-batch size.")
    lr: float = Field(2e-3, gt=0, le=1.0, description="Adam learning rate.")
    weight_decay: float = Field(1e-4, ge=0, le=1.0, description="AdamW weight decay.")
    patience: int | None = Field(5, ge=1, le=1000, description="Stop after this many epochs without a better val accuracy; None = run all epochs.")
    device: DeviceChoice = Field("auto", description="Device: auto (cuda, mps, cpu), cpu, cuda or mps.")


@dataclass
class TrainedClassifier:
    """A trained model (best val epoch restored) and its history."""

    model: Classifier
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _check_data(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or len(x) != len(y):
        raise DataError(f"{name} set must be images (N, C, H, W) with N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) == 0:
        raise DataError(f"{name} set is empty")


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits (N, K) on the CPU, computed in eval mode on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def embed(model: Classifier, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Penultimate-layer features (N, D) on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model.embed(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_logits(model, x).argmax(1) == y.cpu()).float().mean())


def train_classifier(
    spec: ArchSpec,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    num_classes: int,
    cfg: TrainConfig | None = None,
    seed: int = 0,
    augment: BatchAugment | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainedClassifier:
    """Train `spec` on `train`; keep the weights of the best val-accuracy epoch (early stopping)."""
    cfg = cfg or TrainConfig()
    x_train, y_train = train
    _check_data(x_train, y_train, "training")
    if val is not None:
        _check_data(*val, "validation")
    device = select_device(cfg.device)
    generator = torch.Generator().manual_seed(seed)
    _, channels, height, width = x_train.shape
    with _INIT_LOCK:
        torch.manual_seed(seed)
        model = build_classifier(spec, channels, height, width, num_classes)
    model = model.to(device)
    model.dropout.generator = torch.Generator(device=device).manual_seed(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_dev, y_dev = x_train.to(device), y_train.to(device)
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        train_loss = _train_epoch(model, optimizer, x_dev, y_dev, cfg.batch_size, generator, augment)
        val_acc = accuracy(model, *val) if val is not None else float("nan")
        history.append({"epoch": epoch, "train_loss": train_loss, "val_accuracy": val_acc})
        if val is None or val_acc > best[0]:
            best = (val_acc, epoch, copy.deepcopy(model.state_dict()))
        if on_epoch is not None:
            on_epoch(epoch, val_acc)
        if cfg.patience is not None and val is not None and epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    log.debug("trained %s for %d epochs, best val accuracy %.4f at epoch %d", spec.to_json(), epoch, best[0], best[1])
    return TrainedClassifier(model, best[1], best[0], epoch, time.perf_counter() - started, history)


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    augment: BatchAugment | None,
) -> float:
    model.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total, count = torch.zeros((), device=x.device), 0
    for start in range(0, len(x), batch_size):
        index = order[start : start + batch_size]
        if len(index) < 2 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
            continue  # batch norm cannot normalise a single sample
        images = x[index]
        if augment is not None:
            images = augment(images, generator)
        loss = nn.functional.cross_entropy(model(images), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(index)
        count += len(index)
    return float(total / max(count, 1))
