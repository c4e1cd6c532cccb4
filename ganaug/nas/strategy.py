"""Search strategies as Optuna samplers: aging evolution and a GAN over genomes (ours) plus Optuna's random, TPE and NSGA-II."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from ganaug.nas.config import SearchConfig
from ganaug.nas.gan_sampler import GanSampler
from ganaug.nas.proposals import ProposingSampler, rank_trials
from ganaug.nas.space import Genome, SearchSpace
from ganaug.samplers import ResumableRandomSampler, nsga2_sampler, tpe_sampler

GENERATION_ATTR = "generation"
PARENTS_ATTR = "parents"


def tournament(population: Sequence[FrozenTrial], size: int, rng: np.random.Generator,
               directions: Sequence[StudyDirection]) -> FrozenTrial:
    """Draw `size` distinct members; the winner is dominated by the fewest others (ties: first objective)."""
    picks = [population[i] for i in rng.choice(len(population), size=min(size, len(population)), replace=False)]
    return rank_trials(picks, directions)[0]


class AgingEvolutionSampler(ProposingSampler):
    """Regularized (aging) evolution (Real et al., 2019) as an Optuna sampler.

    The population is the `population_size` most recently finished (complete or pruned) trials, so old members age out
    whatever their fitness. The first `population_size` trials are random: drawn by
    `ResumableRandomSampler(seed)`, they are the very trials random search (and TPE's and NSGA-II's
    random start) draws with the same seed, so strategies compared at one seed differ only in what
    they do after those draws. After that each child is a mutation of a tournament winner (or, with
    `crossover_prob`, of the uniform crossover of two winners), with randomness drawn from
    `(seed, trial.number)`. A resumed study proposes what the uninterrupted one would have, given
    the same completed trials.
    """

    def __init__(self, space: SearchSpace, population_size: int = 6, tournament_size: int = 3,
                 crossover_prob: float = 0.0, seed: int = 0) -> None:
        super().__init__(space, seed)
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.crossover_prob = crossover_prob

    def propose(self, study: Study, number: int) -> tuple[Genome, int, list[int]] | None:
        """A child genome, its generation and its parents' trial numbers; None while the population is not full."""
        genes = set(self.space.choices)
        rng = np.random.default_rng([self.seed, number])
        done = self.finished(study)  # pruned trials stay in the population with their partial fitness: they lose tournaments
        if len(done) < self.population_size:
            return None
        population = done[-self.population_size :]
        parents = [tournament(population, self.tournament_size, rng, study.directions)]
        genome = {name: parents[0].params[name] for name in genes}
        if rng.random() < self.crossover_prob:
            parents.append(tournament(population, self.tournament_size, rng, study.directions))
            genome = self.space.crossover(genome, {name: parents[1].params[name] for name in genes}, rng)
        child = self.space.mutate(genome, rng)
        generation = 1 + max(int(p.user_attrs.get(GENERATION_ATTR, 0)) for p in parents)
        return child, generation, [p.number for p in parents]


def make_sampler(cfg: SearchConfig, space: SearchSpace) -> BaseSampler:
    """The Optuna sampler for `cfg.strategy`, seeded with `cfg.seed`."""
    if cfg.strategy == "evolution":
        return AgingEvolutionSampler(space, cfg.population_size, cfg.tournament_size, cfg.crossover_prob, cfg.seed)
    if cfg.strategy == "gan":
        return GanSampler(space, cfg.population_size, cfg.gan_top_k, cfg.gan_retrain_every, cfg.gan_steps, cfg.seed)
    if cfg.strategy == "random":
        return ResumableRandomSampler(cfg.seed)
    if cfg.strategy == "tpe":
        return tpe_sampler(cfg.seed, cfg.population_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return nsga2_sampler(cfg.seed, cfg.population_size)


def make_pruner(cfg: SearchConfig) -> optuna.pruners.BasePruner:
    """Optuna pruner for `cfg.pruner` ('auto' resolved)."""
    name = cfg.pruner_name()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(2, cfg.population_size // 2), n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def ga_generation(trial: FrozenTrial) -> int | None:
    """Generation recorded by an Optuna genetic sampler (NSGA-II) in the trial's system attributes."""
    for key, value in trial.system_attrs.items():
        if key.endswith(":generation"):
            return int(value)
    return None
