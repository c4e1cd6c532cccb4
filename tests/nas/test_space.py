"""The search space: every sample builds, pooling stays within the image, mutation/crossover stay valid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from nas_helpers import TOY_SPACE

from ganaug.classifier import ArchSpec, build_classifier, max_pools
from ganaug.nas.config import SpaceConfig
from ganaug.nas.evaluator import cpu_threads
from ganaug.nas.space import SearchSpace

DEEP_SPACE = SpaceConfig(min_blocks=1, max_blocks=8, channels=[4, 8], pools=["max", "avg"], head_widths=[0, 8])


@pytest.mark.parametrize("size", [8, 28])
def test_sampled_architectures_build_and_run(size: int) -> None:
    space = SearchSpace(DEEP_SPACE, size, size)
    rng = np.random.default_rng(0)
    pool_counts = set()
    with cpu_threads(1), torch.no_grad():
        for _ in range(60):
            arch = space.decode(space.sample(rng))
            assert arch.pool_count() <= max_pools(size, size)
            pool_counts.add(arch.pool_count())
            model = build_classifier(arch, 1, size, size, 10).eval()
            assert model(torch.zeros(2, 1, size, size)).shape == (2, 10)
    # with 8 blocks that all want to pool, the budget (3 for 8x8, 4 for 28x28) is what stops them
    assert max(pool_counts) == max_pools(size, size)


def test_decode_turns_pools_beyond_the_budget_into_none() -> None:
    space = SearchSpace(DEEP_SPACE, 8, 8)
    genome = space.sample(np.random.default_rng(1))
    genome.update({"n_blocks": 5, **{f"b{i}_pool": "max" for i in range(8)}})
    assert [b.pool for b in space.decode(genome).blocks] == ["max", "max", "max", "none", "none"]


def test_mutation_changes_exactly_one_active_gene_and_stays_valid() -> None:
    space = SearchSpace(TOY_SPACE, 8, 8)
    rng = np.random.default_rng(2)
    for _ in range(100):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        changed = [k for k in parent if parent[k] != child[k]]
        assert len(changed) == 1 and changed[0] in space.active_genes(parent)
        assert child[changed[0]] in space.choices[changed[0]]
        ArchSpec.from_json(space.decode(child).to_json())  # valid, JSON round trip
        build_classifier(space.decode(child), 1, 8, 8, 10)


def test_crossover_takes_every_gene_from_a_parent() -> None:
    space = SearchSpace(TOY_SPACE, 28, 28)
    rng = np.random.default_rng(3)
    for _ in range(50):
        first, second = space.sample(rng), space.sample(rng)
        child = space.crossover(first, second, rng)
        assert set(child) == set(space.choices)
        assert all(child[k] in (first[k], second[k]) for k in child)
        build_classifier(space.decode(child), 1, 28, 28, 10)


def test_one_point_space_has_nothing_to_mutate() -> None:
    cfg = SpaceConfig(min_blocks=1, max_blocks=1, channels=[8], kernels=[3], pools=["max"], norms=["batch"],
                      activations=["relu"], dropouts=[0.0], head_widths=[0], residual=[False],
                      augment_strengths=[0.0])
    space = SearchSpace(cfg, 8, 8)
    genome = space.sample(np.random.default_rng(0))
    assert space.mutate(genome, np.random.default_rng(0)) == genome


def test_distributions_cover_the_genome() -> None:
    space = SearchSpace(TOY_SPACE, 8, 8)
    dists = space.distributions()
    genome = space.sample(np.random.default_rng(0))
    assert set(dists) == set(genome)
    assert all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in genome.items())
