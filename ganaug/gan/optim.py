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


STANDING_SAMPLES = 512  # generated images whose batch statistics make the standing statistics
STANDING_BATCH = 128


@torch.no_grad()
def standing_statistics(generator: nn.Module, seed: int, samples: int = STANDING_SAMPLES,
                        batch_size: int = STANDING_BATCH) -> None:
    """Set every batch norm's running statistics to the average batch statistics of the generator's
    own output over `samples` images of fixed noise (classes in turn), then leave it in eval mode.

    This is BigGAN's "standing statistics": running statistics collected while the weights moved
    (or copied from other weights, as for an averaged generator) need not fit the current weights.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        generator.eval()
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    generator.train()
    try:
        for start in range(0, samples, batch_size):
            count = min(batch_size, samples - start)
            noise = torch.randn(count, int(generator.latent_dim), generator=rng)
            labels = torch.arange(start, start + count) % int(generator.shape.num_classes)
            generator(noise.to(device), labels.to(device))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        generator.eval()


class EmaGenerator:
    """An averaged copy of the generator: w_ema <- d w_ema + (1 - d) w, with a warm-up on d.

    The warm-up d_t = min(decay, (1 + t) / (10 + t)) lets the average follow the fast early changes.
    Batch-norm statistics: `statistics="copied"` copies the live generator's running statistics at
    every update (they were collected for other weights); `"standing"` recomputes them for the
    averaged weights (`standing_statistics`) whenever the module is used after an update.
    """

    def __init__(self, generator: nn.Module, decay: float, statistics: str = "standing", seed: int = 0) -> None:
        if statistics not in ("standing", "copied"):
            raise ValueError(f"unknown EMA statistics '{statistics}'")
        self.decay, self.statistics, self.seed = decay, statistics, seed
        self._module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.updates = 0
        self._fresh_at = -1  # updates count at the last standing-statistics pass

    @property
    def module(self) -> nn.Module:
        """The averaged generator in eval mode, its batch-norm statistics current."""
        if self.statistics == "standing" and self._fresh_at != self.updates:
            standing_statistics(self._module, self.seed)
            self._fresh_at = self.updates
        return self._module

    def update(self, generator: nn.Module) -> None:
        """One averaging step: `blend` with `weight()`, then count it."""
        self.blend(generator, self.weight())
        self.updates += 1

    def weight(self) -> float:
        """1 - d_t: the share of the live generator in the next update."""
        return 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def blend(self, generator: nn.Module, weight: float | torch.Tensor) -> None:
        """w_ema <- w_ema + weight (w - w_ema), without counting the update.

        A captured CUDA graph passes `weight` as a 0-d device tensor that is refilled with `weight()`
        before each replay (a Python number would be frozen into the graph); the update is counted
        by the caller.
        """
        for averaged, current in zip(self._module.parameters(), generator.parameters()):
            averaged.lerp_(current.detach(), weight)
        if self.statistics == "copied":
            for averaged, current in zip(self._module.buffers(), generator.buffers()):
                averaged.copy_(current)

    def state_dict(self) -> dict[str, object]:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, object]) -> None:
        self._module.load_state_dict(state["module"])  # type: ignore[arg-type]
        self.updates = int(state["updates"])  # type: ignore[arg-type]
        self._fresh_at = self.updates
