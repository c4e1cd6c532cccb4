"""The training step: networks, optimizers, and the two-phase D step / G step.

The training images live on the device as one tensor and batches are drawn by indexing, so no
DataLoader, worker processes or host-to-device copies run per step. Losses stay on the device as
tensors; the caller decides when to read them (reading forces a device sync).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganaug.device import WEIGHT_INIT_LOCK
from ganaug.data.splits import minority_classes
from ganaug.gan.augment import diff_augment
from ganaug.gan.config import GanConfig
from ganaug.gan.graph import step_graph_for
from ganaug.gan.losses import (
    LOSSES,
    interpolate,
    lecam_penalty,
    mode_seeking_penalty,
    r1_penalty,
    wgan_gradient_penalty,
)
from ganaug.gan.networks import Discriminator, Generator, ImageShape
from ganaug.gan.optim import EmaGenerator, lr_factor, make_optimizer, make_scheduler

LOSS_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "augment_p")
ADA_INTERVAL = 4  # D steps between adjustments of the adaptive augmentation probability
LECAM_DECAY = 0.99  # of the moving averages of D's outputs that LeCam regularization pulls towards


class GanTrainer:
    """Everything that changes during training, and one `train_step()` to change it."""

    def __init__(self, cfg: GanConfig, shape: ImageShape, device: torch.device,
                 images: torch.Tensor, labels: torch.Tensor) -> None:
        self.cfg, self.shape, self.device = cfg, shape, device
        # channels-last ("NHWC") convolutions are faster with oneDNN on CPU and with cuDNN on GPU.
        self.images = images.to(device).contiguous(memory_format=torch.channels_last)  # (N, C, H, W) in [-1, 1]
        self.labels = labels.to(device)  # (N,) int64
        # class_sampling='balanced': image indices grouped by class, with each present class's start and size
        self.by_class = torch.argsort(self.labels, stable=True)
        counts = torch.bincount(self.labels)
        self.class_sizes = counts[counts > 0]
        self.class_starts = (torch.cumsum(counts, 0) - counts)[counts > 0]
        self.balanced_batches = cfg.class_sampling == "balanced" or (
            cfg.class_sampling == "auto" and any(minority_classes(self.class_sizes.tolist())))
        with WEIGHT_INIT_LOCK, torch.random.fork_rng(devices=[]):  # weight init from the seed, global RNG untouched
            torch.manual_seed(cfg.seed)
            g_width, d_width = cfg.widths(shape.height, shape.width)
            self.generator = Generator(cfg.latent_dim, shape, g_width).to(device)
            self.discriminator = Discriminator(shape, d_width, cfg.spectral_norm, cfg.conditioning,
                                               cfg.minibatch_std).to(device)
        self.generator.to(memory_format=torch.channels_last)
        self.discriminator.to(memory_format=torch.channels_last)
        self.ema = (EmaGenerator(self.generator, cfg.ema_decay, cfg.ema_statistics, cfg.seed)
                    if cfg.ema_decay is not None else None)
        # Adaptive augmentation (ADA): probability and the running sum of sign(D(real)) since the last
        # adjustment, kept on the device so that no step waits for a read.
        self.augment_p = torch.zeros((), device=device) if cfg.ada_target is not None else None
        self.ada_signs = torch.zeros(2, device=device)  # (sum of signs, count)
        self.ada_d_steps = 0
        self.lecam_averages = torch.zeros(2, device=device)  # moving averages of mean D(real), D(fake)
        self.g_optimizer = make_optimizer(self.generator, cfg.g_lr, cfg, device)
        self.d_optimizer = make_optimizer(self.discriminator, cfg.d_lr, cfg, device)
        self.g_scheduler = make_scheduler(self.g_optimizer, cfg)
        self.d_scheduler = make_scheduler(self.d_optimizer, cfg)
        self.rng = torch.Generator(device=device).manual_seed(cfg.seed)
        self.d_loss_fn, self.g_loss_fn = LOSSES[cfg.loss]
        compile_networks = cfg.compile is True
        self.g_forward: nn.Module = torch.compile(self.generator) if compile_networks else self.generator  # type: ignore[assignment]
        self.d_forward: nn.Module = torch.compile(self.discriminator) if compile_networks else self.discriminator  # type: ignore[assignment]
        self.use_amp = cfg.amp and device.type == "cuda"
        self.step = 0
        self.step_graph = step_graph_for(self)  # None: the step runs eagerly (the reason is logged when graph was asked for)

    # ------------------------------------------------------------------ one step

    def train_step(self) -> torch.Tensor:
        """`d_steps_per_g` D steps, one G step, EMA and schedules; returns (5,) d_loss, g_loss, D(real), D(fake), augment_p.

        The device work is `device_step`, replayed from a CUDA graph when `step_graph` holds one;
        the host-side counts and schedules follow it here.
        """
        losses = self.step_graph.run() if self.step_graph is not None else None
        if losses is None:
            if self.step_graph is not None:  # the capture failed (logged): eager from here on
                self.step_graph = None
                self._set_capturable(False)
            losses = self.device_step(self.ema.weight() if self.ema is not None else None)
        if self.ema is not None:
            self.ema.updates += 1
        self.g_scheduler.step()
        self.d_scheduler.step()
        self.step += 1
        return losses

    def device_step(self, ema_weight: float | torch.Tensor | None) -> torch.Tensor:
        """The device work of one step (D steps, G step, EMA blend with `ema_weight`): no value is read on the host."""
        for index in range(self.cfg.d_steps_per_g):
            real, labels = self._batch()
            z = torch.randn(len(real), self.cfg.latent_dim, generator=self.rng, device=self.device)
            fake_labels = self._fake_labels(labels)
            last = index == self.cfg.d_steps_per_g - 1
            with torch.set_grad_enabled(last), self._autocast():
                fake = self.g_forward(z, fake_labels)  # (B, C, H, W); keeps its graph for the G step
            d_loss, d_real, d_fake = self.d_step(real, fake.detach(), labels, fake_labels)
        g_loss = self.g_step(fake, fake_labels, z)
        if self.ema is not None:
            self.ema.blend(self.generator, ema_weight)  # type: ignore[arg-type]
        augment_p = self.augment_p if self.augment_p is not None else torch.ones((), device=self.device)
        if not self.cfg.diffaugment:
            augment_p = torch.zeros((), device=self.device)
        return torch.stack([d_loss, g_loss, d_real, d_fake, augment_p]).detach()

    def _fake_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels to generate: the real batch's, or with mode seeking its first half twice (pairs of one class)."""
        if self.cfg.mode_seeking is None or len(labels) < 2:
            return labels
        half = len(labels) // 2
        return torch.cat([labels[:half], labels[:half], labels[2 * half:]])

    def d_step(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor,
               fake_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Update D on real and (detached) fake images in one forward pass; returns loss, mean D(real), mean D(fake)."""
        fake_labels = labels if fake_labels is None else fake_labels
        policy = self.cfg.diffaugment
        real_aug = diff_augment(real, policy, self.rng, self.augment_p)
        fake_aug = diff_augment(fake, policy, self.rng, self.augment_p)
        if self.cfg.r1_gamma is not None:
            real_aug.requires_grad_(True)
        with self._autocast():
            logits, class_logits = self.d_forward(torch.cat([real_aug, fake_aug]), torch.cat([labels, fake_labels]), len(real))
        logits = logits.float()
        real_logits, fake_logits = logits.chunk(2)
        loss = self.d_loss_fn(real_logits, fake_logits)
        if class_logits is not None:
            loss = loss + self.cfg.acgan_weight * F.cross_entropy(class_logits[: len(real)].float(), labels)
        if self.cfg.r1_gamma is not None:
            loss = loss + r1_penalty(real_logits, real_aug, self.cfg.r1_gamma)
        if self.cfg.loss == "wgan-gp":
            loss = loss + self._gradient_penalty(real_aug.detach(), fake_aug, labels)
        if self.cfg.lecam_weight is not None:
            loss = loss + lecam_penalty(real_logits, fake_logits, *self.lecam_averages, self.cfg.lecam_weight)
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        real_mean, fake_mean = real_logits.detach().mean(), fake_logits.detach().mean()
        self.lecam_averages.lerp_(torch.stack([real_mean, fake_mean]), 1.0 - LECAM_DECAY)
        if self.augment_p is not None:
            self._adapt_augmentation(real_logits.detach())
        return loss.detach(), real_mean, fake_mean

    def _adapt_augmentation(self, real_logits: torch.Tensor) -> None:
        """ADA (Karras et al. 2020): r = E sign(D(real)); every few D steps move p up while r > target, else down."""
        self.ada_signs += torch.stack([real_logits.sign().sum(), real_logits.new_tensor(float(len(real_logits)))])
        self.ada_d_steps += 1
        if self.ada_d_steps % ADA_INTERVAL:
            return
        overfit = self.ada_signs[0] / self.ada_signs[1]
        move = ADA_INTERVAL * len(real_logits) / (self.cfg.ada_kimg * 1000.0)  # known on the host: no sync
        self.augment_p.add_(torch.sign(overfit - self.cfg.ada_target) * move).clamp_(0.0, 1.0)
        self.ada_signs.zero_()

    def g_step(self, fake: torch.Tensor, labels: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Update G through a frozen D (no gradients are computed for D's weights)."""
        self.discriminator.requires_grad_(False)
        try:
            with self._autocast():
                logits, class_logits = self.d_forward(diff_augment(fake, self.cfg.diffaugment, self.rng, self.augment_p), labels)
            loss = self.g_loss_fn(logits.float())
            if class_logits is not None:
                loss = loss + self.cfg.acgan_weight * F.cross_entropy(class_logits.float(), labels)
            if self.cfg.mode_seeking is not None and z is not None and len(z) >= 2:
                half = len(z) // 2
                loss = loss + mode_seeking_penalty(fake[:half].float(), fake[half : 2 * half].float(), z[:half],
                                                   z[half : 2 * half], self.cfg.mode_seeking)
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.g_optimizer.step()
        finally:
            self.discriminator.requires_grad_(True)
        return loss.detach()

    def _gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mix = torch.rand(len(real), generator=self.rng, device=self.device)
        mixed = interpolate(real, fake, mix).requires_grad_(True)
        with self._autocast():
            logits, _ = self.d_forward(mixed, labels)
        return wgan_gradient_penalty(logits.float(), mixed, self.cfg.gp_weight)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real images and their labels (the fakes of the step take the same labels)."""
        if self.balanced_batches:  # a class uniformly, then one of its images
            cls = torch.randint(0, len(self.class_sizes), (self.cfg.batch_size,), generator=self.rng, device=self.device)
            offset = (torch.rand(self.cfg.batch_size, generator=self.rng, device=self.device) * self.class_sizes[cls]).long()
            index = self.by_class[self.class_starts[cls] + torch.minimum(offset, self.class_sizes[cls] - 1)]
        else:
            index = torch.randint(0, len(self.images), (self.cfg.batch_size,), generator=self.rng, device=self.device)
        return self.images[index], self.labels[index]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.use_amp and self.step_graph is not None:  # autocast's weight cast cache must be off in a CUDA graph
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        if self.use_amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _set_capturable(self, capturable: bool) -> None:
        for optimizer in (self.g_optimizer, self.d_optimizer):
            for group in optimizer.param_groups:
                group["capturable"] = capturable

    # ------------------------------------------------------------------ monitoring helpers

    def learning_rates(self) -> tuple[float, float]:
        """Current (generator, discriminator) learning rates."""
        return self.g_optimizer.param_groups[0]["lr"], self.d_optimizer.param_groups[0]["lr"]

    @contextlib.contextmanager
    def sampling_generator(self) -> Iterator[nn.Module]:
        """The generator used for samples (the EMA copy when there is one), in eval mode."""
        if self.ema is not None:
            yield self.ema.module
            return
        self.generator.eval()
        try:
            yield self.generator
        finally:
            self.generator.train()

    @torch.no_grad()
    def mean_score(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Mean D output on un-augmented images (D in eval mode: no power-iteration update)."""
        if len(images) == 0:
            return float("nan")
        self.discriminator.eval()
        try:
            with self._autocast():
                logits, _ = self.discriminator(images.to(self.device), labels.to(self.device))
            return float(logits.float().mean())
        finally:
            self.discriminator.train()

    def parameters_finite(self) -> bool:
        """True when no weight of G or D is NaN or inf."""
        tensors = [p.detach() for p in (*self.generator.parameters(), *self.discriminator.parameters())]
        return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: weights, optimizers, schedules, RNG, step."""
        return {
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.ema.state_dict() if self.ema is not None else None,
            "g_optimizer": _as_eager(self.g_optimizer.state_dict()),
            "d_optimizer": _as_eager(self.d_optimizer.state_dict()),
            "g_scheduler": self.g_scheduler.state_dict(),
            "d_scheduler": self.d_scheduler.state_dict(),
            "rng": self.rng.get_state(),
            "regularizers": {"augment_p": self.augment_p, "ada_signs": self.ada_signs, "ada_d_steps": self.ada_d_steps,
                             "lecam_averages": self.lecam_averages},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; raises KeyError/RuntimeError/ValueError on mismatch."""
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema is not None:
            if state["generator_ema"] is None:
                raise ValueError("the checkpoint has no EMA generator but ema_decay is set")
            self.ema.load_state_dict(state["generator_ema"])
        self.g_optimizer.load_state_dict(state["g_optimizer"])
        self.d_optimizer.load_state_dict(state["d_optimizer"])
        if self.step_graph is not None:  # the optimizers' state tensors were replaced: capture again
            self.step_graph.reset()
        self.g_scheduler.load_state_dict(state["g_scheduler"])
        self.d_scheduler.load_state_dict(state["d_scheduler"])
        self.rng.set_state(state["rng"])
        self.step = int(state["step"])
        regularizers = state.get("regularizers")
        if regularizers is not None:
            if self.augment_p is not None and regularizers["augment_p"] is not None:
                self.augment_p.copy_(regularizers["augment_p"])
            self.ada_signs.copy_(regularizers["ada_signs"])
            self.ada_d_steps = int(regularizers["ada_d_steps"])
            self.lecam_averages.copy_(regularizers["lecam_averages"])
        self._apply_hyperparameters()

    def _apply_hyperparameters(self) -> None:
        # Loading an optimizer restores the saved lr/betas/weight decay; the current config wins, so
        # a run resumed with a lower learning rate (the advice after divergence) really uses it.
        factor = lr_factor(self.step, self.cfg.lr_schedule, self.cfg.steps, self.cfg.lr_decay_rate)
        pairs = ((self.g_optimizer, self.g_scheduler, self.cfg.g_lr), (self.d_optimizer, self.d_scheduler, self.cfg.d_lr))
        for optimizer, scheduler, base_lr in pairs:
            scheduler.base_lrs = [base_lr]
            for group in optimizer.param_groups:
                group.update(lr=base_lr * factor, betas=tuple(self.cfg.betas), weight_decay=self.cfg.weight_decay or 0.0)
            scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def _as_eager(optimizer_state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer's state dict as eager training writes it: a captured step's `capturable` flag is how the
    step ran, not training state, so graph and eager runs write the same checkpoints."""
    for group in optimizer_state["param_groups"]:
        group["capturable"] = False
    return optimizer_state
