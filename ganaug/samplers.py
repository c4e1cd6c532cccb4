"""Optuna's random draws made resumable, for architecture searches and GAN tuning studies.

Optuna's `RandomSampler` draws from one generator seeded once per process. A study stored on disk
and resumed in a new process therefore starts that sequence over: random search, and the random
start of TPE, NSGA-II and aging evolution, propose their first trials' parameters again.
`ResumableRandomSampler` records on each trial which parameters it drew and, at its first draw in
a process, replays the earlier trials' draws in order (one draw's randomness depends only on the
parameter's distribution, which the trial stores), so a resumed study goes on with the draws an
uninterrupted one would have made; an unresumed study draws exactly what `RandomSampler(seed)` draws.
"""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

RANDOM_DRAW_ATTR = "ganaug:random_draws"  # trial system attribute: the parameters drawn at random, in order


class ResumableRandomSampler(RandomSampler):
    """`RandomSampler(seed)` whose sequence survives a resume (see the module's docstring)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self._replayed = False

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        if not self._replayed:
            self._replayed = True
            for earlier in study.get_trials(deepcopy=False):
                if earlier.number < trial.number:
                    for name in earlier.system_attrs.get(RANDOM_DRAW_ATTR, ()):
                        if name in earlier.distributions:
                            super().sample_independent(study, earlier, name, earlier.distributions[name])
        drawn = [*trial.system_attrs.get(RANDOM_DRAW_ATTR, ()), param_name]
        study._storage.set_trial_system_attr(trial._trial_id, RANDOM_DRAW_ATTR, drawn)
        trial.system_attrs[RANDOM_DRAW_ATTR] = drawn  # the frozen copy this ask passes to every parameter
        return super().sample_independent(study, trial, param_name, param_distribution)


def resumable_start(sampler: BaseSampler, seed: int) -> BaseSampler:
    """An Optuna sampler (TPE, NSGA-II) whose random draws come from a `ResumableRandomSampler(seed)`: the same
    draws as its own `RandomSampler(seed)`, kept on resume."""
    if not isinstance(getattr(sampler, "_random_sampler", None), RandomSampler):
        raise TypeError(f"{type(sampler).__name__} of this Optuna version has no random sampler to make resumable")
    sampler._random_sampler = ResumableRandomSampler(seed)  # type: ignore[attr-defined]
    return sampler
