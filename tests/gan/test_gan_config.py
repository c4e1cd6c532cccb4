"""GanConfig: defaults, ranges and combinations are checked with messages naming the option."""

from __future__ import annotations

import pytest

from ganaug.configbase import validate_config
from ganaug.errors import ConfigError
from ganaug.gan.config import GanConfig
from ganaug.gan.networks import default_widths, discriminator_channels, generator_channels


def test_defaults_are_valid_and_round_trip_through_json() -> None:
    cfg = GanConfig()
    assert GanConfig.model_validate_json(cfg.model_dump_json()) == cfg
    g_width, d_width = default_widths(28, 28)
    assert cfg.architecture(28, 28) == {"latent_dim": 64, "g_width": g_width, "d_width": d_width, "spectral_norm": True,
                                        "minibatch_std": cfg.minibatch_std, "conditioning": "projection"}


def test_widths_follow_the_image_size_unless_given() -> None:
    assert default_widths(8, 8) == (32, 32)  # the 8x8 networks measured on digits: G 64 -> 32, D 32 -> 64
    assert default_widths(28, 28) == (32, 32) == default_widths(32, 32)
    assert GanConfig(g_width=16, d_width=8).widths(28, 28) == (16, 8)
    # The generator widens towards its base instead of thinning out towards the image.
    assert generator_channels(2, 32) == [128, 64, 32]  # 28x28: no thinning out to 16 channels at the image
    assert generator_channels(2, 64) == [256, 128, 64]
    assert generator_channels(4, 64) == [512, 512, 256, 128, 64]
    assert discriminator_channels(3, 32) == [32, 64, 128, 256]


@pytest.mark.parametrize(("data", "message"), [
    ({"stepz": 3}, "stepz: unknown option"),
    ({"steps": 0}, "steps: Input should be greater than or equal to 1"),
    ({"loss": "wgan"}, "loss: Input should be 'bce', 'hinge' or 'wgan-gp'"),
    ({"betas": [0.5, 1.0]}, "betas.1: Input should be less than 1"),
    ({"diffaugment": ["zoom"]}, "diffaugment.0"),
    ({"diffaugment": ["cutout", "cutout"]}, "lists an operation twice"),
    ({"device": "tpu"}, "device: Input should be"),
    ({"compile": True, "loss": "wgan-gp"}, "double backward"),
    ({"compile": True, "r1_gamma": 1.0}, "double backward"),
    ({"ada_target": 0.6}, "ada_target adapts the probability of the DiffAugment operations; set diffaugment too"),
    ({"ada_target": 1.5, "diffaugment": ["translation"]}, "ada_target: Input should be less than 1"),
    ({"lecam_weight": 0}, "lecam_weight: Input should be greater than 0"),
    ({"mode_seeking": 0}, "mode_seeking: Input should be greater than 0"),
    ({"ema_statistics": "averaged"}, "ema_statistics: Input should be 'standing' or 'copied'"),
    ({"monitor_every": 0}, "monitor_every: Input should be greater than or equal to 1"),
    ({"monitor_per_class": 2}, "monitor_per_class: Input should be greater than or equal to 8"),
    ({"collapse_spread": 2}, "collapse_spread: Input should be less than or equal to 1"),
    ({"g_width": 4}, "g_width: Input should be greater than or equal to 8"),
])
def test_bad_options_are_config_errors_naming_the_option(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(GanConfig, data, "gan.yaml")
    assert "gan.yaml" in str(caught.value) and message in str(caught.value)
