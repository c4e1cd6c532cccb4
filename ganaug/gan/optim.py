"""Optimizers, learning-rate schedules and the generator's exponential moving average."""

from __future__ import annotations

import copy
import functools
import math

import torch
from torch import nn

from ganaug.gan.config import GanConfig


def lr_factor(step: int, schedule: str, total_steps: int, decay_rate: float) -> float:
    """Multiplier of the base learning rate after `step` of `total_steps` generator steps.

    constant: 1; exponential: exp(-k t); cosine: (1 + cos(pi t)) / 2; with t = step / total_steps.
    """
    progress = min(step / max(total_steps, 1), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "exponential":
        return math.exp(-decay_rate * progress)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule '{schedule}'")


def make_optimizer(module: nn.Module, lr: float, cfg: GanConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the config's betas and weight decay; the fused kernel where the device has one."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(
        module.parameters(), lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay or 0.0, fused=fused
    )


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: GanConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following `lr_factor`; its state holds only numbers, so it checkpoints safely."""
    factor = functools.partial(lr_factor, schedule=cfg.lr_schedule, total_steps=cfg.steps, decay_rate=cfg.lr_decay_rate)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EmaGenerator:
    """An averaged copy of the generator: w_ema <- d w_ema + (1 - d) w, with a warm-up on d.

    The warm-up d_t = min(decay, (1 + t) / (10 + t)) lets the average follow the fast early changes.
    Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, generator: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for averaged, current in zip(self.module.parameters(), generator.parameters()):
            averaged.lerp_(current.detach(), 1.0 - decay)
        for averaged, current in zip(self.module.buffers(), generator.buffers()):
            averaged.copy_(current)
        self.updates += 1

    def state_dict(self) -> dict[str, object]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.module.load_state_dict(state["module"])  # type: ignore[arg-type]
        self.updates = int(state["updates"])  # type: ignore[arg-type]
