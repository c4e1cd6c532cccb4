"""Cheap stand-ins for full-fidelity training, and how to tell which one is worth its cost.

Zero-cost scores look at a candidate at initialisation (one batch, no training):
- `synflow` (Tanaka et al. 2020): sum of |theta * dR/dtheta| with R the summed output of the
  linearised network (absolute weights, all-ones input, float64, eval mode so batch norm is affine);
  reported as its natural log.
- `naswot` (Mellor et al. 2021): log-determinant of the kernel K[i, j] = number of ReLU-like units
  on which images i and j agree (both active or both inactive), from the binary activation codes of
  one batch; -inf when K is singular (two images with identical codes).
- `grad_norm` (Abdelfattah et al. 2021): sum over parameter tensors of the L2 norm of the
  cross-entropy gradient on one batch.
- `params`, `flops`: size of the network (FLOPs of one image's forward pass, counted by torch).
Higher is taken as better for every score. `training` (short training on a small class-balanced
subset) is the other proxy kind; it lives in `evaluator` like full fidelity.

`summarize_proxies` turns per-candidate scores into Spearman/Kendall against full fidelity and a
cost ratio; `choose_proxy` picks the best-correlated proxy among those cheap enough.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from ganaug.classifier import ArchSpec, build_classifier, parameter_count
from ganaug.classifier.train import _INIT_LOCK, cpu_threads
from ganaug.errors import ConfigError, GanAugError
from ganaug.nas.evaluator import TrialData, TrialResult
from ganaug.nas.ranking import kendall, spearman
from ganaug.pruning import TrialPruning

ZeroCostName = Literal["synflow", "naswot", "grad_norm", "params", "flops"]
ZERO_COST: tuple[ZeroCostName, ...] = ("synflow", "naswot", "grad_norm", "params", "flops")
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.SiLU, nn.LeakyReLU)


def _model(arch: ArchSpec, image_shape: Sequence[int], num_classes: int, seed: int) -> nn.Module:
    with _INIT_LOCK:  # weight init draws from the global generator (see classifier.train)
        torch.manual_seed(seed)
        return build_classifier(arch, *image_shape, num_classes)


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """log of sum |theta * grad| of the linearised network's summed output on an all-ones image."""
    model = model.double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64)
    model.zero_grad()
    model(ones).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else float("-inf")


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """log|det K| of the activation-code agreement kernel of one batch (-inf when K is singular)."""
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64)

    def record(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        codes = (output.detach().flatten(1) > 0).double()  # (B, units)
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, ACTIVATIONS)]
    try:
        with torch.no_grad():
            model.train()(x)
    finally:
        for handle in handles:
            handle.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else float("-inf")


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Sum of the L2 norms of each parameter tensor's cross-entropy gradient on one batch."""
    model.train().zero_grad()
    F.cross_entropy(model(x), y).backward()
    return float(sum(p.grad.norm() for p in model.parameters() if p.grad is not None))


def params(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(parameter_count(model))


def flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Floating-point operations of one image's forward pass (eval mode)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(x[:1])
    return float(counter.get_total_flops())


SCORES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow, "naswot": naswot, "grad_norm": grad_norm, "params": params, "flops": flops,
}


def balanced_batch(x: torch.Tensor, y: torch.Tensor, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` images drawn round-robin over the classes in a seeded order (as class-balanced as the data allows)."""
    order = torch.from_numpy(np.random.default_rng([seed, 4391]).permutation(len(y)))
    per_class = [order[y[order] == label].tolist() for label in torch.unique(y).tolist()]
    picks: list[int] = []
    while len(picks) < min(size, len(y)):
        for members in per_class:
            if members and len(picks) < size:
                picks.append(members.pop(0))
    index = torch.tensor(sorted(picks))
    return x[index], y[index]


def zero_cost_score(name: str, arch: ArchSpec, batch: tuple[torch.Tensor, torch.Tensor], num_classes: int,
                    seed: int = 0) -> tuple[float, float]:
    """(score, seconds) of `arch` at initialisation (seeded) on one batch, on the CPU in float32."""
    if name not in SCORES:
        raise ConfigError(f"unknown zero-cost proxy '{name}'; choose one of {', '.join(ZERO_COST)}")
    started = time.perf_counter()
    x, y = batch
    model = _model(arch, x.shape[1:], num_classes, seed)
    model.dropout.generator = torch.Generator().manual_seed(seed + 1)
    with torch.random.fork_rng(devices=[]):  # leave the caller's global generator untouched
        torch.manual_seed(seed)
        score = SCORES[name](model, x, y)
    return score, time.perf_counter() - started


@dataclass(frozen=True)
class ZeroCostRunner:
    """A picklable trial task that scores a candidate with a zero-cost proxy instead of training it."""

    data: TrialData
    name: str
    seed: int = 0
    batch_size: int = 64
    cpu_threads: int | None = 1

    def __call__(self, arch: ArchSpec, prune: TrialPruning | None = None, augment: float = 0.0) -> TrialResult:
        batch = balanced_batch(self.data.train_x, self.data.train_y, self.batch_size, self.seed)
        with cpu_threads(self.cpu_threads):
            score, seconds = zero_cost_score(self.name, arch, batch, self.data.num_classes, self.seed)
        if not math.isfinite(score):
            raise GanAugError(f"{self.name} score of {arch.to_json()} is {score}: degenerate at initialisation")
        model = _model(arch, self.data.image_shape, self.data.num_classes, self.seed)
        return TrialResult(arch_json=arch.to_json(), accuracy=score, parameter_count=parameter_count(model),
                           state="complete", fidelity="proxy", steps_run=0, seconds=seconds, val_curve=(score,))


class ProxyScore(BaseModel):
    """One proxy measured against full fidelity on the same candidates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    spearman: float | None
    kendall: float | None
    seconds: float  # total over the candidates
    cost_ratio: float | None  # full-fidelity seconds / proxy seconds


def summarize_proxies(full_accuracy: Sequence[float], full_seconds: float, scores: Mapping[str, Sequence[float]],
                      seconds: Mapping[str, float]) -> list[ProxyScore]:
    """Rank correlation of each proxy's scores with full-fidelity accuracy, and its cost ratio."""
    return [ProxyScore(name=name, spearman=spearman(full_accuracy, values), kendall=kendall(full_accuracy, values),
                       seconds=seconds[name], cost_ratio=full_seconds / seconds[name] if seconds[name] > 0 else None)
            for name, values in scores.items()]


def choose_proxy(measured: Sequence[ProxyScore], min_speedup: float) -> ProxyScore:
    """The highest Spearman among proxies at least `min_speedup` times cheaper (ties: the cheaper one);
    when none is that cheap, the highest Spearman of all."""
    ranked = [p for p in measured if p.spearman is not None]
    if not ranked:
        raise GanAugError("no proxy has a defined rank correlation (full-fidelity accuracies or scores were all equal)")
    cheap = [p for p in ranked if p.cost_ratio is None or p.cost_ratio >= min_speedup]
    return max(cheap or ranked, key=lambda p: (p.spearman, p.cost_ratio or math.inf))
