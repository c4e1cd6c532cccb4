"""Zero-cost proxies: determinism, hand-counted FLOPs, degenerate NASWOT kernels, the choice of proxy;
augmentation strength; the default architecture inside the default space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganaug.classifier import ArchSpec, build_classifier, parameter_count
from ganaug.errors import ConfigError, GanAugError
from ganaug.nas.augment import affine_augment
from ganaug.nas.config import SpaceConfig
from ganaug.nas.evaluator import TrialData
from ganaug.nas.proxies import (
    ZERO_COST,
    ProxyScore,
    ZeroCostRunner,
    balanced_batch,
    choose_proxy,
    zero_cost_score,
)
from ganaug.nas.space import SearchSpace

SMALL = ArchSpec.model_validate({"blocks": [{"channels": 4, "kernel": 3, "pool": "none"}], "norm": "none",
                                 "head_input": "global_avg", "head_width": 0, "dropout": 0.0})
WIDE = ArchSpec.model_validate({"blocks": [{"channels": 16, "residual": True}, {"channels": 32}], "head_width": 64})


def _batch(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g) * 2 - 1, torch.arange(n) % 10


@pytest.mark.parametrize("name", ZERO_COST)
def test_zero_cost_scores_are_deterministic_for_a_seed(name: str) -> None:
    first, _ = zero_cost_score(name, WIDE, _batch(), 10, seed=3)
    again, _ = zero_cost_score(name, WIDE, _batch(), 10, seed=3)
    small, _ = zero_cost_score(name, SMALL, _batch(), 10, seed=3)
    assert math.isfinite(first) and first == again and first != small


def test_flops_and_params_counted_by_hand() -> None:
    # conv 1->4, 3x3 on 8x8: 2 * 4 * 1 * 9 * 64 multiply-adds; linear 4->10: 2 * 4 * 10
    assert zero_cost_score("flops", SMALL, _batch(), 10)[0] == 2 * 4 * 9 * 64 + 2 * 4 * 10
    assert zero_cost_score("params", SMALL, _batch(), 10)[0] == (4 * 9 + 4) + (4 * 10 + 10)
    assert zero_cost_score("params", WIDE, _batch(), 10)[0] == parameter_count(build_classifier(WIDE, 1, 8, 8, 10))


def test_synflow_grows_with_width_and_depth() -> None:
    # synflow sums |theta * dR/dtheta| of the all-positive network: more units, more paths, larger score
    assert zero_cost_score("synflow", WIDE, _batch(), 10)[0] > zero_cost_score("synflow", SMALL, _batch(), 10)[0]


def test_naswot_is_minus_infinity_for_identical_images_and_finite_otherwise() -> None:
    x, y = _batch(8)
    assert zero_cost_score("naswot", WIDE, (x, y), 10)[0] > -math.inf
    duplicated = torch.cat([x[:4], x[:4]])
    assert zero_cost_score("naswot", WIDE, (duplicated, y), 10)[0] == -math.inf


def test_zero_cost_runner_refuses_degenerate_scores() -> None:
    x = torch.zeros(10, 1, 8, 8)  # every image identical: the NASWOT kernel is singular
    data = TrialData(x, torch.arange(10), x, torch.arange(10), 10)
    with pytest.raises(GanAugError, match="naswot score"):
        ZeroCostRunner(data, "naswot", batch_size=10)(WIDE)
    result = ZeroCostRunner(data, "params", batch_size=10)(WIDE)
    assert result.accuracy == result.parameter_count and result.fidelity == "proxy"


def test_unknown_zero_cost_proxy_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="synflow"):
        zero_cost_score("jacob", WIDE, _batch(), 10)


def test_balanced_batch_takes_every_class_in_turn() -> None:
    x, y = _batch(100)
    bx, by = balanced_batch(x, y, 30, seed=1)
    assert by.bincount().tolist() == [3] * 10 and len(bx) == 30
    assert torch.equal(balanced_batch(x, y, 30, seed=1)[0], bx)


def _score(name: str, rho: float | None, ratio: float | None) -> ProxyScore:
    return ProxyScore(name=name, spearman=rho, kendall=rho, seconds=1.0, cost_ratio=ratio)


def test_choose_proxy_takes_the_best_correlation_among_cheap_enough_ones() -> None:
    measured = [_score("training", 0.9, 3.0), _score("synflow", 0.6, 500.0), _score("params", 0.6, 900.0),
                _score("naswot", None, 400.0)]
    assert choose_proxy(measured, min_speedup=5.0).name == "params"  # tie on Spearman: the cheaper
    assert choose_proxy(measured, min_speedup=2.0).name == "training"
    assert choose_proxy(measured, min_speedup=1000.0).name == "training"  # none cheap enough: best overall
    with pytest.raises(GanAugError, match="rank correlation"):
        choose_proxy([_score("naswot", None, 4.0)], 1.0)


def test_affine_augment_strength() -> None:
    assert affine_augment(0.0) is None
    with pytest.raises(ConfigError, match="strength"):
        affine_augment(4.0)
    x, _ = _batch(6)
    weak = affine_augment(0.5)(x, torch.Generator().manual_seed(0))
    strong = affine_augment(2.0)(x, torch.Generator().manual_seed(0))
    assert torch.equal(weak, affine_augment(0.5)(x, torch.Generator().manual_seed(0)))
    assert 0 < (weak - x).abs().mean() < (strong - x).abs().mean()


@pytest.mark.parametrize("size", [8, 28])
def test_default_architecture_lies_in_the_default_space(size: int) -> None:
    space = SearchSpace(SpaceConfig(), size, size)
    genome = space.encode(ArchSpec(), augment=1.0)
    assert space.decode(genome) == ArchSpec() and space.augment_strength(genome) == 1.0
    assert {"b0_residual", "augment", "head_input"} <= set(space.choices)
    with pytest.raises(ConfigError, match="b0_channels=128"):
        space.encode(ArchSpec.model_validate({"blocks": [{"channels": 128}]}))


def test_residual_blocks_are_sampled_and_train() -> None:
    space = SearchSpace(SpaceConfig(), 28, 28)
    rng = np.random.default_rng(0)
    archs = [space.decode(space.sample(rng)) for _ in range(20)]
    assert any(b.residual for a in archs for b in a.blocks) and any(not b.residual for a in archs for b in a.blocks)
    model = build_classifier(WIDE, 1, 8, 8, 10)
    loss = torch.nn.functional.cross_entropy(model(_batch()[0]), _batch()[1])
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
