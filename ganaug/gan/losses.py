"""Adversarial losses and penalties as small pure functions, picked from `LOSSES` by name.

Discriminator outputs are raw logits (no sigmoid). Each pair is (d_loss(real, fake), g_loss(fake)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

DiscriminatorLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GeneratorLoss = Callable[[torch.Tensor], torch.Tensor]


def d_bce(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Classic GAN D loss: -log sigmoid(real) - log(1 - sigmoid(fake)), averaged per batch."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_bce(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: -log sigmoid(fake)."""
    return F.softplus(-fake).mean()


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge D loss: relu(1 - real) + relu(1 + fake)."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_hinge(fake: torch.Tensor) -> torch.Tensor:
    """Hinge G loss: -fake."""
    return -fake.mean()


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss: fake - real (the gradient penalty is added separately)."""
    return fake.mean() - real.mean()


def g_wasserstein(fake: torch.Tensor) -> torch.Tensor:
    """WGAN generator loss: -fake."""
    return -fake.mean()


LOSSES: dict[str, tuple[DiscriminatorLoss, GeneratorLoss]] = {
    "bce": (d_bce, g_bce),
    "hinge": (d_hinge, g_hinge),
    "wgan-gp": (d_wasserstein, g_wasserstein),
}


def input_gradient_penalty(outputs: torch.Tensor, inputs: torch.Tensor, target_norm: float | None) -> torch.Tensor:
    """Mean over the batch of (||d outputs / d inputs|| - target)^2, or ||.||^2 when target is None.

    `inputs` must require grad and `outputs` must depend on it; the graph is kept so the penalty
    can itself be differentiated.
    """
    (grad,) = torch.autograd.grad(outputs.sum(), inputs, create_graph=True)
    squared = grad.pow(2).flatten(1).sum(dim=1)  # (B,)
    if target_norm is None:
        return squared.mean()
    return (squared.add(1e-12).sqrt() - target_norm).pow(2).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma / 2 * E ||grad_x D(x)||^2 on real images."""
    return 0.5 * gamma * input_gradient_penalty(real_logits, real_images, None)


def interpolate(real: torch.Tensor, fake: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """Points on the lines between real and fake images; `mix` is (B,) in [0, 1]."""
    return torch.lerp(fake, real, mix.view(-1, *([1] * (real.dim() - 1))))


def wgan_gradient_penalty(mixed_logits: torch.Tensor, mixed_images: torch.Tensor, weight: float) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): weight * E (||grad_x D(x)|| - 1)^2 at interpolates."""
    return weight * input_gradient_penalty(mixed_logits, mixed_images, 1.0)



def lecam_penalty(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_average: torch.Tensor,
                  fake_average: torch.Tensor, weight: float) -> torch.Tensor:
    """LeCam (Tseng et al. 2021): weight * (E relu(real - avg_fake)^2 + E relu(avg_real - fake)^2).

    The averages are moving averages of D's mean outputs on real and fake images; keeping D's
    outputs near the other side's average bounds how far it can overfit a small training set.
    """
    return weight * (F.relu(real_logits - fake_average).pow(2).mean() + F.relu(real_average - fake_logits).pow(2).mean())


def mode_seeking_penalty(first: torch.Tensor, second: torch.Tensor, z_first: torch.Tensor, z_second: torch.Tensor,
                         weight: float, eps: float = 1e-5) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019): weight / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps).

    `first` and `second` are images of the same classes from different noise; the penalty grows as
    the generator maps different noise to the same image, which is how a conditional GAN collapses.
    """
    ratio = (first - second).abs().mean() / (z_first - z_second).abs().mean()
    return weight / (ratio + eps)
