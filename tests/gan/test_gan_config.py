"""GanConfig: defaults, ranges and combinations are checked with messages naming the option."""

from __future__ import annotations

import pytest

from ganaug.configbase import validate_config
from ganaug.errors import ConfigError
from ganaug.gan.config import GanConfig


def test_defaults_are_valid_and_round_trip_through_json() -> None:
    cfg = GanConfig()
    assert GanConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert cfg.architecture() == {"latent_dim": 64, "g_width": 64, "d_width": 32, "spectral_norm": True,
                                  "minibatch_std": False, "conditioning": "projection"}


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
])
def test_bad_options_are_config_errors_naming_the_option(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(GanConfig, data, "gan.yaml")
    assert "gan.yaml" in str(caught.value) and message in str(caught.value)
