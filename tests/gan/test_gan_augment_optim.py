"""DiffAugment operations, learning-rate schedules and the generator's weight average."""

from __future__ import annotations

import math

import pytest
import torch

from ganaug.gan.augment import color, cutout, diff_augment, translation
from ganaug.gan.config import GanConfig
from ganaug.gan.networks import Generator, ImageShape
from ganaug.gan.optim import EmaGenerator, lr_factor, make_optimizer, make_scheduler


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_translation_shifts_content_and_fills_with_zero() -> None:
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, 8, 8).repeat(64, 2, 1, 1)  # (B, C, H, W), no zeros
    shifted = translation(x, rng())
    assert shifted.shape == x.shape
    values = set(x.unique().tolist()) | {0.0}
    assert set(shifted.unique().tolist()) <= values
    for image in shifted:  # every output is the input moved by at most one pixel each way (8 * 0.125)
        assert any(torch.equal(image[:, 1:-1, 1:-1], x[0, :, 1 + dy:7 + dy, 1 + dx:7 + dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    assert torch.equal(shifted[:, 0], shifted[:, 1])  # channels move together


def test_cutout_zeroes_one_square_per_image() -> None:
    x = torch.ones(32, 3, 8, 8)
    out = cutout(x, rng())
    holes = (out[:, 0] == 0).flatten(1).sum(dim=1)
    assert int(holes.max()) == 16 and int(holes.min()) >= 4  # a 4x4 square, clipped at the border
    assert torch.equal(out[:, 0], out[:, 2])


def test_color_saturation_applies_only_to_rgb() -> None:
    gray = torch.rand(16, 1, 4, 4) * 2 - 1
    shifted = color(gray, rng())
    # brightness and contrast on grayscale: an affine map per image, so correlation with the input stays 1
    for before, after in zip(gray.flatten(1), shifted.flatten(1)):
        assert torch.corrcoef(torch.stack([before, after]))[0, 1] == pytest.approx(1.0, abs=1e-5)
    rgb = torch.rand(4, 3, 4, 4)
    assert color(rgb, rng()).shape == rgb.shape


def test_diff_augment_is_deterministic_and_differentiable() -> None:
    x = torch.randn(8, 3, 8, 8, requires_grad=True)
    policy = ["color", "translation", "cutout"]
    first, second = diff_augment(x, policy, rng(3)), diff_augment(x, policy, rng(3))
    assert torch.equal(first, second)
    first.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert diff_augment(x, None, rng()) is x


@pytest.mark.parametrize(("schedule", "step", "expected"), [
    ("constant", 70, 1.0),
    ("exponential", 0, 1.0),
    ("exponential", 50, math.exp(-2.0 * 0.5)),
    ("exponential", 100, math.exp(-2.0)),
    ("cosine", 0, 1.0),
    ("cosine", 50, 0.5),
    ("cosine", 100, 0.0),
])
def test_lr_factor(schedule: str, step: int, expected: float) -> None:
    assert lr_factor(step, schedule, total_steps=100, decay_rate=2.0) == pytest.approx(expected)


def test_scheduler_follows_lr_factor() -> None:
    cfg = GanConfig(lr_schedule="exponential", lr_decay_rate=1.0, steps=10, g_lr=0.01)
    module = torch.nn.Linear(2, 2)
    optimizer = make_optimizer(module, cfg.g_lr, cfg, torch.device("cpu"))
    scheduler = make_scheduler(optimizer, cfg)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * math.exp(-0.5))


def _shifted_generator_and_ema(statistics: str) -> tuple[Generator, EmaGenerator, list[torch.Tensor]]:
    generator = Generator(4, ImageShape(1, 8, 8, 2), 16)
    ema = EmaGenerator(generator, decay=0.99, statistics=statistics)
    before = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(1.0)
        for b in generator.buffers():
            if b.dtype.is_floating_point:
                b.add_(2.0)
    ema.update(generator)  # first update: decay = min(0.99, 1 / 10) = 0.1
    return generator, ema, before


def test_ema_averages_parameters_with_warmup_and_copied_buffers() -> None:
    generator, ema, before = _shifted_generator_and_ema("copied")
    for old, new in zip(before, ema.module.parameters()):
        assert torch.allclose(new, 0.1 * old + 0.9 * (old + 1.0), atol=1e-6)
    for averaged, current in zip(ema.module.buffers(), generator.buffers()):
        assert torch.equal(averaged, current)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_ema_standing_statistics_fit_the_averaged_weights() -> None:
    generator, ema, before = _shifted_generator_and_ema("standing")
    for old, new in zip(before, ema.module.parameters()):
        assert torch.allclose(new, 0.1 * old + 0.9 * (old + 1.0), atol=1e-6)
    module = ema.module
    assert not module.training and not any(p.requires_grad for p in module.parameters())
    # The running statistics are the averaged generator's own batch statistics, not the live one's.
    norm = module.norms[0].norm
    assert not torch.equal(norm.running_mean, generator.norms[0].norm.running_mean)
    captured: list[torch.Tensor] = []
    hook = module.norms[0].norm.register_forward_pre_hook(lambda _, args: captured.append(args[0].detach()))
    standing = [b.clone() for b in module.buffers()]
    from ganaug.gan.optim import STANDING_BATCH, STANDING_SAMPLES, standing_statistics

    standing_statistics(module, seed=0)
    hook.remove()
    inputs = torch.cat(captured)  # (STANDING_SAMPLES, C, h, w) seen by the first norm
    assert len(inputs) == STANDING_SAMPLES and STANDING_SAMPLES % STANDING_BATCH == 0
    assert torch.allclose(norm.running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(standing, module.buffers()))  # same seed, same statistics
    assert ema.module is module  # no update since: not recomputed


def test_augmentation_probability_zero_is_identity_and_one_is_always() -> None:
    x = torch.randn(16, 1, 8, 8)
    assert torch.equal(diff_augment(x, ["translation", "cutout"], rng(), torch.tensor(0.0)), x)
    always = diff_augment(x, ["cutout"], rng(3), torch.tensor(1.0))
    assert bool(((always == 0).flatten(1).sum(1) >= 4).all())  # every image has a cut-out square (2x2 at least at a border)


def test_adaptive_augmentation_moves_with_the_overfitting_signal() -> None:
    from ganaug.gan.trainer import ADA_INTERVAL, GanTrainer

    cfg = GanConfig(diffaugment=["translation"], ada_target=0.6, ada_kimg=1.0, g_width=8, d_width=8, latent_dim=4,
                    batch_size=10, device="cpu")
    images, labels = torch.zeros(20, 1, 8, 8), torch.arange(20) % 2
    trainer = GanTrainer(cfg, ImageShape(1, 8, 8, 2), torch.device("cpu"), images, labels)
    step = ADA_INTERVAL * 10 / 1000.0  # images per adjustment / (ada_kimg * 1000)
    for _ in range(ADA_INTERVAL):  # D scores every real image positive: r = 1 > 0.6, so p rises
        trainer._adapt_augmentation(torch.ones(10))
    assert trainer.augment_p.item() == pytest.approx(step)
    for _ in range(2 * ADA_INTERVAL):  # r = 0 < 0.6: p falls, and stops at 0
        trainer._adapt_augmentation(-torch.ones(10))
    assert trainer.augment_p.item() == 0.0


def test_lecam_penalty_by_hand() -> None:
    from ganaug.gan.losses import lecam_penalty

    real, fake = torch.tensor([1.0, -1.0]), torch.tensor([0.0, 2.0])
    # real - avg_fake = (1.5, -0.5) -> relu^2 mean (2.25 + 0) / 2; avg_real - fake = (0.5, -1.5) -> (0.25 + 0) / 2
    assert lecam_penalty(real, fake, torch.tensor(0.5), torch.tensor(-0.5), 2.0).item() == pytest.approx(2.0 * (1.125 + 0.125))


@pytest.mark.parametrize("sampling", ["images", "balanced", "auto"])
def test_class_sampling_draws_classes_in_proportion_or_equally(sampling: str) -> None:
    from ganaug.gan.trainer import GanTrainer

    counts = [90, 10, 0, 50]  # class 2 has no images; classes are out of order in the data
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])[torch.randperm(150, generator=rng(1))]
    images = torch.arange(150).view(-1, 1, 1, 1).float().expand(-1, 1, 8, 8).contiguous()  # each image shows its index
    cfg = GanConfig(class_sampling=sampling, g_width=8, d_width=8, latent_dim=4, batch_size=500, device="cpu")
    trainer = GanTrainer(cfg, ImageShape(1, 8, 8, 4), torch.device("cpu"), images, labels)
    drawn_images, drawn_labels = zip(*(trainer._batch() for _ in range(20)), strict=True)
    index, drawn = torch.cat(drawn_images)[:, 0, 0, 0].long(), torch.cat(drawn_labels)
    assert torch.equal(labels[index], drawn)  # every image drawn with its own label
    share = torch.bincount(drawn, minlength=4).float() / len(drawn)
    # auto: class 1 has under half the images of the largest, so classes are drawn equally
    expected = torch.tensor([90, 10, 0, 50]) / 150 if sampling == "images" else torch.tensor([1, 1, 0, 1]) / 3
    assert torch.allclose(share, expected, atol=0.02)
    assert set(index.tolist()) == set(range(150))  # within a class, every image is drawn


def test_auto_class_sampling_keeps_image_sampling_on_balanced_data() -> None:
    from ganaug.gan.trainer import GanTrainer

    labels = torch.arange(60) % 3  # 20 images per class
    images = torch.arange(60).view(-1, 1, 1, 1).float().expand(-1, 1, 8, 8).contiguous()
    batches = {}
    for sampling in ("auto", "images"):
        cfg = GanConfig(class_sampling=sampling, g_width=8, d_width=8, latent_dim=4, batch_size=16, device="cpu")
        trainer = GanTrainer(cfg, ImageShape(1, 8, 8, 3), torch.device("cpu"), images, labels)
        batches[sampling] = torch.cat([trainer._batch()[1] for _ in range(5)])
    assert torch.equal(batches["auto"], batches["images"])  # the same draws: artifacts of balanced data unchanged
