"""A semi-supervised GAN (Salimans et al. 2016, "Improved Techniques for Training GANs").

The discriminator is a K-class classifier whose "fake" class is implicit: with logits l(x) over the
K real classes, D(x) = Z(x) / (Z(x) + 1), Z(x) = sum exp l(x). It learns from three kinds of images:
labelled ones (cross-entropy), unlabelled ones (they are real: log D) and generated ones (they are
fake: log(1 - D)). The generator is trained by feature matching: the batch mean of the
discriminator's last hidden layer on generated images should equal that on real pool images.

The networks are the paper's MNIST multilayer perceptrons on the flattened image (so any C, H, W),
with weight normalisation and Gaussian noise in the discriminator. Images enter in [-1, 1] and are
mapped to [0, 1] inside, where the paper's noise levels were tuned.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

from ganaug.classifier.train import _val_subset, predict_logits
from ganaug.configbase import StrictModel
from ganaug.device import WEIGHT_INIT_LOCK, DeviceChoice, select_device
from ganaug.errors import DataError, DivergenceError

log = logging.getLogger(__name__)


Tensors = tuple[torch.Tensor, torch.Tensor]
# (step, val_accuracy) -> None; may raise to stop early (e.g. optuna.TrialPruned)
EvalCallback = Callable[[int, float], None]


class SemiSupervisedConfig(StrictModel):
    """The semi-supervised GAN: its networks, optimizer and step budget."""

    steps: int = Field(6000, ge=1, le=10_000_000, description="Optimizer steps of both networks (one D step and one G step each).")
    batch_size: int = Field(100, ge=2, le=8192, description="Images per batch of each kind: labelled, unlabelled and generated.")
    lr: float = Field(3e-3, gt=0.0, le=1.0, description="Adam learning rate of both networks (beta1 = 0.5).")
    decay_start: float = Field(0.5, ge=0.0, le=1.0, description="Share of the steps after which the learning rate falls linearly to 0.")
    noise_dim: int = Field(100, ge=1, le=4096, description="Length of the generator's uniform noise vector.")
    discriminator_widths: list[int] = Field(
        default_factory=lambda: [1000, 500, 250, 250, 250], min_length=1, max_length=16,
        description="Hidden layer widths of the discriminator (its last one is the feature-matching layer).",
    )
    generator_widths: list[int] = Field(
        default_factory=lambda: [500, 500], min_length=1, max_length=16, description="Hidden layer widths of the generator."
    )
    input_noise: float = Field(0.3, ge=0.0, le=5.0, description="Std of the Gaussian noise added to the discriminator's input in training ([0, 1] pixels).")
    hidden_noise: float = Field(0.5, ge=0.0, le=5.0, description="Std of the Gaussian noise added after every hidden layer of the discriminator in training.")
    unlabelled_weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of the unlabelled (real vs fake) loss beside the labelled cross-entropy.")
    eval_every: int | None = Field(
        None, ge=1, le=10_000_000, description="Score val every this many steps (and at the last); None = 20 times per run."
    )
    val_max_samples: int | None = Field(
        2000, ge=10, le=10_000_000, description="Score at most this many val images (a fixed subset) at each evaluation; None = all."
    )
    device: DeviceChoice = Field("auto", description="Device: auto (cuda, mps, cpu), cpu, cuda or mps.")

    def eval_interval(self) -> int:
        return self.eval_every if self.eval_every is not None else max(1, math.ceil(self.steps / 20))


class _Noise(nn.Module):
    """Additive Gaussian noise in training mode, drawn from the module's own generator."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


class SemiDiscriminator(nn.Module):
    """K logits and the last hidden features of a flattened image in [-1, 1]."""

    def __init__(self, pixels: int, num_classes: int, widths: list[int], input_noise: float, hidden_noise: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [_Noise(input_noise)]
        previous = pixels
        for width in widths:
            layers += [weight_norm(nn.Linear(previous, width)), nn.ReLU(), _Noise(hidden_noise)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.head = weight_norm(nn.Linear(previous, num_classes))

    def seed_noise(self, generator: torch.Generator) -> None:
        for module in self.body:
            if isinstance(module, _Noise):
                module.generator = generator

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature-matching layer (B, widths[-1])."""
        return self.body((x.flatten(1) + 1) / 2)  # the paper's [0, 1] pixels; after the last noise (measured better)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K)


class SemiGenerator(nn.Module):
    """Uniform noise (B, noise_dim) -> images (B, C, H, W) in [-1, 1]."""

    def __init__(self, noise_dim: int, shape: tuple[int, int, int], widths: list[int]) -> None:
        super().__init__()
        self.noise_dim, self.shape = noise_dim, shape
        layers: list[nn.Module] = []
        previous = noise_dim
        for width in widths:
            layers += [nn.Linear(previous, width, bias=False), nn.BatchNorm1d(width), nn.Softplus()]
            previous = width
        layers.append(weight_norm(nn.Linear(previous, math.prod(shape))))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(self.body(z)) * 2 - 1).view(len(z), *self.shape)


def discriminator_loss(logits_labelled: torch.Tensor, labels: torch.Tensor, logits_unlabelled: torch.Tensor,
                       logits_fake: torch.Tensor, unlabelled_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(labelled cross-entropy, unlabelled real-vs-fake loss); the total is the first plus weight x the second.

    With Z = sum exp l: -log D(real) = softplus(lse) - lse and -log(1 - D(fake)) = softplus(lse).
    """
    supervised = F.cross_entropy(logits_labelled, labels)
    real = torch.logsumexp(logits_unlabelled, dim=1)
    fake = torch.logsumexp(logits_fake, dim=1)
    unsupervised = 0.5 * (F.softplus(real) - real).mean() + 0.5 * F.softplus(fake).mean()
    return supervised, unsupervised * unlabelled_weight


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the batch means of the discriminator's features."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).mean()


@dataclass
class SemiSupervisedGan:
    """The trained pair (the discriminator at its best val step) and its history."""

    discriminator: SemiDiscriminator
    generator: SemiGenerator
    best_step: int
    best_val_accuracy: float
    steps_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    @torch.no_grad()
    def sample(self, count: int, seed: int, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` generated images (N, C, H, W) in [-1, 1] and the discriminator's class probabilities (N, K)."""
        generator = torch.Generator().manual_seed(seed)
        device = next(self.generator.parameters()).device
        self.generator.eval()
        images = []
        for start in range(0, count, batch_size):
            z = torch.rand(min(batch_size, count - start), self.generator.noise_dim, generator=generator)
            images.append(self.generator(z.to(device)).cpu())
        x = torch.cat(images) if images else torch.empty(0, *self.generator.shape)
        return x, torch.softmax(predict_logits(self.discriminator, x), dim=1)


class _Draws:
    """Endless shuffled batches of one image set (the labelled set is far smaller than the pool: it repeats)."""

    def __init__(self, size: int, batch_size: int, generator: torch.Generator, device: torch.device) -> None:
        self.size, self.batch, self.generator, self.device = size, batch_size, generator, device
        self.order, self.position = torch.empty(0, dtype=torch.int64), size

    def next(self) -> torch.Tensor:
        parts, needed = [], self.batch
        while needed:
            if self.position >= self.size:
                self.order, self.position = torch.randperm(self.size, generator=self.generator).to(self.device), 0
            take = self.order[self.position : self.position + needed]
            parts.append(take)
            self.position, needed = self.position + len(take), needed - len(take)
        return torch.cat(parts)


def train_semi_supervised(labelled: Tensors, pool: torch.Tensor, val: Tensors | None, num_classes: int,
                          cfg: SemiSupervisedConfig | None = None, seed: int = 0,
                          on_eval: EvalCallback | None = None) -> SemiSupervisedGan:
    """Train the pair on labelled images, the pool (plus the labelled images, unlabelled) and generated ones.

    The discriminator kept is the one of the best val evaluation (ties go to the later step).
    """
    cfg = cfg or SemiSupervisedConfig()
    x_lab, y_lab = labelled
    if x_lab.ndim != 4 or len(x_lab) != len(y_lab) or len(x_lab) == 0:
        raise DataError(f"the labelled set must be images (N, C, H, W) with N labels, got {tuple(x_lab.shape)} and {tuple(y_lab.shape)}")
    if len(pool) == 0:
        raise DataError("the semi-supervised GAN needs unlabelled images: the pool is empty")
    if pool.shape[1:] != x_lab.shape[1:]:
        raise DataError(f"pool images are {tuple(pool.shape[1:])} but labelled images are {tuple(x_lab.shape[1:])}")
    run = _SemiRun(x_lab, y_lab, torch.cat([pool, x_lab]), val, num_classes, cfg, seed)
    for step in range(1, cfg.steps + 1):
        run.step()
        if step % run.eval_every and step != cfg.steps:
            continue
        accuracy = run.evaluate(step)
        if on_eval is not None:
            on_eval(step, accuracy)
    return run.finish()


class _SemiRun:
    """One training's networks, optimizers, schedule, batch draws and best discriminator."""

    def __init__(self, x_lab: torch.Tensor, y_lab: torch.Tensor, unlabelled: torch.Tensor, val: Tensors | None,
                 num_classes: int, cfg: SemiSupervisedConfig, seed: int) -> None:
        self.cfg, self.device = cfg, select_device(cfg.device)
        shape = tuple(x_lab.shape[1:])
        with WEIGHT_INIT_LOCK:
            torch.manual_seed(seed)
            discriminator = SemiDiscriminator(math.prod(shape), num_classes, cfg.discriminator_widths,
                                              cfg.input_noise, cfg.hidden_noise)
            generator = SemiGenerator(cfg.noise_dim, shape, cfg.generator_widths)  # type: ignore[arg-type]
        self.D, self.G = discriminator.to(self.device), generator.to(self.device)
        self.random = torch.Generator(device=self.device).manual_seed(seed + 1)  # noise of D and G's inputs
        self.D.seed_noise(self.random)
        self.shuffle = torch.Generator().manual_seed(seed + 2)
        self.x_lab, self.y_lab = x_lab.to(self.device), y_lab.to(self.device)
        self.unlabelled = unlabelled.to(self.device)
        self.val = _val_subset(val, cfg.val_max_samples) if val is not None else None
        self.labelled_draws = _Draws(len(x_lab), cfg.batch_size, self.shuffle, self.device)
        self.unlabelled_draws = _Draws(len(unlabelled), cfg.batch_size, self.shuffle, self.device)
        betas = (0.5, 0.999)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=betas)
        decay_from = round(cfg.decay_start * cfg.steps)
        factor = lambda step: 1.0 if step < decay_from else max(0.0, (cfg.steps - step) / max(1, cfg.steps - decay_from))  # noqa: E731
        self.schedules = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (self.opt_d, self.opt_g)]
        self.eval_every = cfg.eval_interval()
        self.best = (-1.0, 0, copy.deepcopy(self.D.state_dict()))
        self.history: list[dict[str, float]] = []
        self.sums = torch.zeros(3, device=self.device)  # supervised, unsupervised, generator loss since last evaluation
        self.count = self.steps_run = 0
        self.started = time.perf_counter()

    def _noise(self) -> torch.Tensor:
        return torch.rand(self.cfg.batch_size, self.cfg.noise_dim, generator=self.random, device=self.device)

    def step(self) -> None:
        """One discriminator step on (labelled, unlabelled, generated), then one feature-matching generator step."""
        self.D.train()
        self.G.train()
        batch = self.cfg.batch_size
        with torch.no_grad():
            fake = self.G(self._noise())
        real = torch.cat([self.x_lab[(index := self.labelled_draws.next())],
                          self.unlabelled[self.unlabelled_draws.next()]])
        logits = self.D(torch.cat([real, fake]))  # one pass: (3B, K) = labelled, unlabelled, generated
        supervised, unsupervised = discriminator_loss(logits[:batch], self.y_lab[index], logits[batch : 2 * batch],
                                                      logits[2 * batch :], self.cfg.unlabelled_weight)
        self.opt_d.zero_grad(set_to_none=True)
        (supervised + unsupervised).backward()
        self.opt_d.step()
        self.D.requires_grad_(False)  # the generator step needs gradients for G's images only
        with torch.no_grad():
            real_features = self.D.features(self.unlabelled[self.unlabelled_draws.next()])
        generator_loss = feature_matching_loss(real_features, self.D.features(self.G(self._noise())))
        self.opt_g.zero_grad(set_to_none=True)
        generator_loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        for schedule in self.schedules:
            schedule.step()
        self.sums += torch.stack([supervised.detach(), unsupervised.detach(), generator_loss.detach()])
        self.count, self.steps_run = self.count + 1, self.steps_run + 1

    def evaluate(self, step: int) -> float:
        means = (self.sums / max(self.count, 1)).tolist()
        if not all(math.isfinite(value) for value in means):
            raise DivergenceError(f"semi-supervised GAN losses became non-finite by step {step} ({means}); lower the lr")
        accuracy = float("nan")
        if self.val is not None:
            accuracy = float((predict_logits(self.D, self.val[0]).argmax(1) == self.val[1]).float().mean())
        self.history.append({"step": step, "supervised_loss": means[0], "unsupervised_loss": means[1],
                             "generator_loss": means[2], "val_accuracy": accuracy,
                             "lr": self.schedules[0].get_last_lr()[0]})
        self.sums, self.count = torch.zeros(3, device=self.device), 0
        if self.val is None or accuracy >= self.best[0]:
            self.best = (accuracy, step, copy.deepcopy(self.D.state_dict()))
        log.debug("semi-supervised GAN step %d: val accuracy %.4f, losses %s", step, accuracy, means)
        return accuracy

    def finish(self) -> SemiSupervisedGan:
        accuracy, step, state = self.best
        self.D.load_state_dict(state)
        self.D.eval()
        self.G.eval()
        return SemiSupervisedGan(self.D, self.G, step, accuracy, self.steps_run, time.perf_counter() - self.started,
                                 self.history)
