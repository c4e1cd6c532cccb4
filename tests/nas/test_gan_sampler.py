"""The gan strategy: genomes inside the space, better than random search on a toy fitness, deterministic and resumable."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from nas_helpers import TOY_SPACE, toy_task

from ganaug.classifier import build_classifier
from ganaug.nas.config import SearchConfig, SpaceConfig
from ganaug.nas.gan_sampler import GanSampler, GenomeCoding, straight_through_sample
from ganaug.nas.space import SearchSpace
from ganaug.nas.study import open_study, run_search_trials


def gan_search(folder: Path | None = None, **overrides: object) -> optuna.Study:
    values: dict[str, object] = {"strategy": "gan", "n_trials": 14, "population_size": 4, "tournament_size": 2,
                                 "gan_top_k": 3, "gan_retrain_every": 2, "gan_steps": 10,
                                 "storage": "memory" if folder is None else "journal", "space": TOY_SPACE}
    values.update(overrides)
    cfg = SearchConfig(**values)
    space = SearchSpace(cfg.space, 8, 8)
    study = open_study(cfg, space, folder, "toy")
    run_search_trials(study, space, toy_task, cfg.n_trials)
    return study


@pytest.mark.parametrize("space", [SpaceConfig(), SpaceConfig(preset="wide")], ids=["default", "wide"])
def test_gan_proposes_only_genomes_inside_the_space(space: SpaceConfig) -> None:
    study = gan_search(space=space, n_trials=16)
    choices = SearchSpace(space, 8, 8).choices
    trials = study.get_trials()
    assert len(trials) == 16
    for trial in trials:
        assert set(trial.params) == set(choices)
        assert all(value in choices[name] for name, value in trial.params.items())
    generated = trials[4:]  # after the random start of population_size trials
    assert all(t.user_attrs["generation"] >= 1 and len(t.user_attrs["parents"]) == 3 for t in generated)
    assert all(max(t.user_attrs["parents"]) < t.number for t in generated)
    assert all(t.user_attrs["generation"] == 0 and t.user_attrs["parents"] == [] for t in trials[:4])
    for trial in generated[-3:]:  # the decoded candidates build (the wide space has 1x1 and 7x7 kernels)
        build_classifier(SearchSpace(space, 8, 8).decode(trial.params), 1, 8, 8, 10)


def best_toy_fitness(strategy: str, seed: int) -> float:
    cfg = SearchConfig(strategy=strategy, n_trials=40, population_size=10, storage="memory", seed=seed, space=TOY_SPACE)
    space = SearchSpace(cfg.space, 8, 8)
    study = open_study(cfg, space, None, "toy")
    run_search_trials(study, space, toy_task, cfg.n_trials)
    return study.best_value


def test_gan_beats_random_search_at_equal_trials() -> None:
    # same random start as random search at each seed; the gan's default options after it
    gan = [best_toy_fitness("gan", seed) for seed in range(5)]
    random = [best_toy_fitness("random", seed) for seed in range(5)]
    assert np.mean(gan) > np.mean(random)


def test_gan_starts_from_random_searchs_own_draws() -> None:
    gan, random = gan_search(n_trials=8), gan_search(n_trials=8, strategy="random")
    assert [t.params for t in gan.trials[:4]] == [t.params for t in random.trials[:4]]
    assert [t.params for t in gan.trials[4:]] != [t.params for t in random.trials[4:]]


def test_gan_is_deterministic_per_seed_and_leaves_global_torch_state_alone() -> None:
    rng_state, threads = torch.get_rng_state(), torch.get_num_threads()
    first, again, other = gan_search(seed=0), gan_search(seed=0), gan_search(seed=1)
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.params for t in first.trials] != [t.params for t in other.trials]
    assert torch.equal(torch.get_rng_state(), rng_state) and torch.get_num_threads() == threads


@pytest.mark.parametrize("cut", [6, 9])  # at a retraining, and between two
def test_resumed_gan_search_proposes_what_an_uninterrupted_one_would(tmp_path: Path, cut: int) -> None:
    gan_search(tmp_path, n_trials=cut)
    resumed = gan_search(tmp_path, n_trials=14)  # a new sampler: rebuilt from the stored trials only
    uninterrupted = gan_search(None, n_trials=14)
    assert [t.params for t in resumed.trials] == [t.params for t in uninterrupted.trials]
    assert [(t.user_attrs["generation"], t.user_attrs["parents"]) for t in resumed.trials] == [
        (t.user_attrs["generation"], t.user_attrs["parents"]) for t in uninterrupted.trials]


def test_gan_avoids_proposing_a_candidate_already_tried() -> None:
    study = gan_search(n_trials=20)
    space = SearchSpace(TOY_SPACE, 8, 8)
    candidates = [(space.decode(t.params).to_json(), space.augment_strength(t.params)) for t in study.trials]
    assert len(set(candidates)) == len(candidates)


def test_gan_proposal_takes_well_under_a_second_on_the_wide_space() -> None:
    cfg = SearchConfig(strategy="gan", space="wide", population_size=6, storage="memory")
    space = SearchSpace(cfg.space, 28, 28)
    study = open_study(cfg, space, None, "toy")
    run_search_trials(study, space, toy_task, 6)  # the random start
    started = time.perf_counter()
    run_search_trials(study, space, toy_task, 14)  # two retrainings at the default gan_steps
    assert (time.perf_counter() - started) / 8 < 0.5


def test_straight_through_samples_are_one_hot_inside_each_genes_choices() -> None:
    coding = GenomeCoding.of(SearchSpace(TOY_SPACE, 8, 8))
    logits = torch.zeros(64, len(coding.sizes), coding.depth, requires_grad=True)
    sample = straight_through_sample(logits, coding.mask(), torch.Generator().manual_seed(0))
    values = sample.detach()  # one-hot up to rounding (hard + soft - soft)
    assert torch.allclose(values.sum(dim=2), torch.ones(64, len(coding.sizes)))
    assert torch.allclose(values, values.round(), atol=1e-6)
    padding = coding.mask() == float("-inf")
    assert not values[:, padding].any()
    sample[:, 0, 0].sum().backward()  # the softmax's gradient reaches the logits
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_sampler_of_make_sampler_carries_the_gan_options() -> None:
    from ganaug.nas.strategy import make_sampler

    cfg = SearchConfig(strategy="gan", population_size=7, gan_top_k=4, gan_retrain_every=2, gan_steps=12, seed=3)
    sampler = make_sampler(cfg, SearchSpace(cfg.space, 8, 8))
    assert isinstance(sampler, GanSampler)
    assert (sampler.start_size, sampler.top_k, sampler.retrain_every, sampler.steps, sampler.seed) == (7, 4, 2, 12, 3)
