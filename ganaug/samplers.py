"""Optuna's random draws made resumable, for architecture searches and GAN tuning studies.

Optuna's `RandomSampler` draws from one generator seeded once per process. A study stored on disk
and resumed in a new process therefore starts that sequence over: random search, and the random
start of TPE, NSGA-II and aging evolution, propose their first trials' parameters again.
`ResumableRandomSampler` keeps, per trial, the names of the parameters it drew; the study loop
(`ganaug.study.ask`) records them on the trial as the user attribute `RANDOM_DRAW_ATTR`. At its
first draw in a process the sampler replays the earlier trials' draws in order (one draw's
randomness depends only on the parameter's distribution, which the trial stores), so a resumed
study goes on with the draws an uninterrupted one would have made; an unresumed study draws
exactly what `RandomSampler(seed)` draws.

`ResumableStart` gives TPE and NSGA-II that random sampler: it hands Optuna's sampler every
relative proposal and takes over the independent draws Optuna's sampler would make at random
(TPE's first `n_startup_trials` finished trials; every NSGA-II independent draw, i.e. its first
generation and its mutations).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

RANDOM_DRAW_ATTR = "ganaug:random_draws"  # the parameters drawn at random, in order (a system attribute before 2026-12)


def recorded_draws(trial: FrozenTrial) -> list[str]:
    """The names of the parameters `trial` drew at random, as the study recorded them."""
    return list(trial.user_attrs.get(RANDOM_DRAW_ATTR) or trial.system_attrs.get(RANDOM_DRAW_ATTR) or ())


class ResumableRandomSampler(RandomSampler):
    """`RandomSampler(seed)` whose sequence survives a resume (see the module's docstring)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self._replayed = False
        self._draws: dict[int, list[str]] = {}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if not self._replayed:
            self._replayed = True
            for earlier in study.get_trials(deepcopy=False):
                if earlier.number < trial.number:
                    for name in recorded_draws(earlier):
                        if name in earlier.distributions:
                            super().sample_independent(study, earlier, name, earlier.distributions[name])
        self._draws.setdefault(trial.number, []).append(param_name)
        return super().sample_independent(study, trial, param_name, param_distribution)

    def take_draws(self, number: int) -> list[str]:
        """The parameters trial `number` drew here, in order (forgotten once taken: the study records them)."""
        return self._draws.pop(number, [])


class ResumableStart(BaseSampler):
    """An Optuna sampler whose random draws come from `ResumableRandomSampler(seed)`: the same draws as its own
    `RandomSampler(seed)`, kept on resume. `startup_trials`: independent draws are random while fewer trials than
    this have finished (TPE's rule); None = every independent draw is random (NSGA-II)."""

    def __init__(self, inner: BaseSampler, seed: int, startup_trials: int | None) -> None:
        self.inner = inner
        self.random = ResumableRandomSampler(seed)
        self.startup_trials = startup_trials

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if self.startup_trials is None or self._finished(study) < self.startup_trials:
            return self.random.sample_independent(study, trial, param_name, param_distribution)
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
        self.random.reseed_rng()

    def take_draws(self, number: int) -> list[str]:
        return self.random.take_draws(number)

    @staticmethod
    def _finished(study: Study) -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def tpe_sampler(seed: int, startup_trials: int) -> ResumableStart:
    """TPE whose first `startup_trials` (finished) trials are resumable random draws."""
    return ResumableStart(TPESampler(seed=seed, n_startup_trials=startup_trials), seed, startup_trials)


def nsga2_sampler(seed: int, population_size: int) -> ResumableStart:
    """NSGA-II whose first generation and mutations are resumable random draws."""
    return ResumableStart(NSGAIISampler(population_size=population_size, seed=seed), seed, None)


def take_random_draws(sampler: BaseSampler, number: int) -> list[str]:
    """What trial `number` drew at random from `sampler` (a ganaug sampler; nothing for another)."""
    take = getattr(sampler, "take_draws", None)
    return take(number) if take is not None else []
