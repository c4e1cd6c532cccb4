"""Network output shapes for the supported image sizes, and the pyramid that sizes them."""

from __future__ import annotations

import pytest
import torch

from ganaug.errors import ConfigError
from ganaug.gan.networks import Discriminator, Generator, ImageShape, pyramid_levels


@pytest.mark.parametrize("size", [8, 28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size: int, channels: int) -> None:
    shape = ImageShape(channels=channels, height=size, width=size, num_classes=4)
    generator = Generator(latent_dim=8, shape=shape, width=16)
    discriminator = Discriminator(shape, width=8, spectral_norm=True, conditioning="projection")
    labels = torch.tensor([0, 1, 3])
    images = generator(torch.randn(3, 8), labels)
    assert images.shape == (3, channels, size, size)
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits, class_logits = discriminator(images, labels)
    assert logits.shape == (3,) and class_logits is None


def test_acgan_discriminator_has_a_class_head() -> None:
    shape = ImageShape(channels=3, height=16, width=12, num_classes=5)
    discriminator = Discriminator(shape, width=8, spectral_norm=False, conditioning="acgan")
    logits, class_logits = discriminator(torch.randn(2, 3, 16, 12), torch.tensor([0, 4]))
    assert logits.shape == (2,) and class_logits is not None and class_logits.shape == (2, 5)


def test_projection_conditioning_changes_the_score_with_the_label() -> None:
    shape = ImageShape(channels=1, height=8, width=8, num_classes=2)
    discriminator = Discriminator(shape, width=8, spectral_norm=True, conditioning="projection").eval()
    image = torch.randn(1, 1, 8, 8).repeat(2, 1, 1, 1)
    logits, _ = discriminator(image, torch.tensor([0, 1]))
    assert logits[0] != logits[1]


def test_generator_output_depends_on_the_label() -> None:
    generator = Generator(8, ImageShape(1, 8, 8, 3), 16).eval()
    z = torch.randn(1, 8).repeat(2, 1)
    images = generator(z, torch.tensor([0, 2]))
    assert not torch.allclose(images[0], images[1])


@pytest.mark.parametrize(("height", "width", "levels"), [(8, 8, 1), (28, 28, 2), (32, 32, 3), (64, 64, 4), (9, 9, 0), (16, 12, 2)])
def test_pyramid_levels(height: int, width: int, levels: int) -> None:
    assert pyramid_levels(height, width) == levels


def test_spectral_norm_bounds_the_discriminator_weights() -> None:
    shape = ImageShape(1, 8, 8, 2)
    discriminator = Discriminator(shape, width=8, spectral_norm=True, conditioning="projection")
    for _ in range(30):  # power iteration converges in training-mode forward passes
        discriminator(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
    weight = discriminator.linear.weight  # (1, C): spectral norm = its L2 norm
    assert float(torch.linalg.vector_norm(weight.detach())) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(("shape", "message"), [
    (ImageShape(2, 8, 8, 3), "1 or 3 channels"),
    (ImageShape(1, 2, 8, 3), "between 4 and 1024"),
    (ImageShape(1, 8, 8, 0), "at least one"),
])
def test_unsupported_shapes_are_config_errors(shape: ImageShape, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Generator(8, shape, 16)


def test_minibatch_std_groups_stay_inside_each_part() -> None:
    shape = ImageShape(1, 8, 8, 2)
    discriminator = Discriminator(shape, width=8, spectral_norm=False, conditioning="projection", minibatch_std=True)
    real, labels = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 0, 1, 0, 1])
    first, _ = discriminator(torch.cat([real, torch.randn(6, 1, 8, 8)]), torch.cat([labels, labels]), 6)
    second, _ = discriminator(torch.cat([real, torch.randn(6, 1, 8, 8)]), torch.cat([labels, labels]), 6)
    assert torch.equal(first[:6], second[:6])  # the reals' scores do not see the fakes
    assert not torch.equal(first[6:], second[6:])


def test_minibatch_std_feature_is_zero_for_identical_samples() -> None:
    from ganaug.gan.networks import minibatch_stddev

    same = torch.randn(1, 3, 2, 2).repeat(4, 1, 1, 1)
    assert float(minibatch_stddev(same, 4).max()) == pytest.approx(1e-4)
    varied = minibatch_stddev(torch.randn(8, 3, 2, 2), 4)
    assert varied.shape == (8, 1, 2, 2) and float(varied.min()) > 0.1
