"""Strategies on a toy fitness (a known function of the spec): evolution beats random search."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from nas_helpers import TOY_SPACE, toy_task

from ganaug.nas.config import SearchConfig
from ganaug.nas.space import SearchSpace
from ganaug.nas.strategy import tournament
from ganaug.nas.study import open_study, run_search_trials


def best_toy_fitness(strategy: str, seed: int, n_trials: int = 60) -> tuple[float, optuna.Study]:
    cfg = SearchConfig(strategy=strategy, n_trials=n_trials, population_size=10, tournament_size=3,
                       storage="memory", seed=seed, space=TOY_SPACE)
    space = SearchSpace(cfg.space, 8, 8)
    study = open_study(cfg, space, None, "toy")
    run_search_trials(study, space, toy_task, cfg.n_trials)
    return study.best_value, study


def test_evolution_beats_random_search_at_equal_budget() -> None:
    evolution = [best_toy_fitness("evolution", seed)[0] for seed in range(3)]
    random = [best_toy_fitness("random", seed)[0] for seed in range(3)]
    assert evolution[0] > random[0]  # the fixed seed
    assert np.mean(evolution) > np.mean(random)


def test_evolution_starts_from_random_searchs_own_draws() -> None:
    # common random numbers: at one seed the strategies differ only after the shared random start
    for seed in (0, 3):
        _, evolution = best_toy_fitness("evolution", seed, n_trials=14)
        _, random = best_toy_fitness("random", seed, n_trials=14)
        assert [t.params for t in evolution.trials[:10]] == [t.params for t in random.trials[:10]]
        assert [t.params for t in evolution.trials[10:]] != [t.params for t in random.trials[10:]]
    _, other_seed = best_toy_fitness("random", 1, n_trials=10)
    assert [t.params for t in other_seed.trials] != [t.params for t in random.trials[:10]]


def test_evolution_records_generations_and_parents() -> None:
    _, study = best_toy_fitness("evolution", seed=0, n_trials=25)
    trials = study.get_trials()
    assert all(t.user_attrs["generation"] == 0 and t.user_attrs["parents"] == [] for t in trials[:10])
    children = trials[10:]
    assert all(t.user_attrs["parents"] and all(p < t.number for p in t.user_attrs["parents"]) for t in children)
    for child in children:  # a child is one generation past its oldest-lineage parent
        parents = [trials[p].user_attrs["generation"] for p in child.user_attrs["parents"]]
        assert child.user_attrs["generation"] == 1 + max(parents)


def test_evolution_child_differs_from_its_parent_by_one_mutation_without_crossover() -> None:
    cfg = SearchConfig(strategy="evolution", n_trials=20, population_size=5, tournament_size=2, crossover_prob=0.0,
                       storage="memory", space=TOY_SPACE)
    space = SearchSpace(cfg.space, 8, 8)
    study = open_study(cfg, space, None, "toy")
    run_search_trials(study, space, toy_task, cfg.n_trials)
    trials = study.get_trials()
    for child in trials[5:]:
        (parent,) = child.user_attrs["parents"]
        assert sum(trials[parent].params[k] != v for k, v in child.params.items()) == 1


@pytest.mark.parametrize("strategy", ["tpe", "nsga2"])
def test_optuna_strategies_run_on_the_space(strategy: str) -> None:
    best, study = best_toy_fitness(strategy, seed=0, n_trials=15)
    assert len(study.trials) == 15 and 0.0 < best <= 1.0


def test_tournament_prefers_non_dominated_then_accuracy() -> None:
    directions = [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    def trial(number: int, acc: float, params: float) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(values=[acc, params])
        t.number = number
        return t
    members = [trial(0, 0.9, 100.0), trial(1, 0.8, 50.0), trial(2, 0.7, 200.0)]  # 2 is dominated by 0 and 1
    winner = tournament(members, 3, np.random.default_rng(0), directions)
    assert winner.number == 0  # both 0 and 1 are non-dominated; 0 is more accurate
    single = [trial(0, 0.5, 0.0), trial(1, 0.9, 0.0), trial(2, 0.7, 0.0)]
    assert tournament(single, 3, np.random.default_rng(0), directions[:1]).number == 1
