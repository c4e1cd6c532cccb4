"""What the proposing search strategies (evolution, gan) share: ranking trials, and the Optuna sampler frame.

A proposing sampler draws its first trials from `ResumableRandomSampler(seed)` (the very draws random
search makes with that seed), then proposes whole genomes from the finished trials; `lineage` maps a
trial number to (generation, parent trial numbers) for trials.parquet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ganaug.nas.space import Genome, SearchSpace
from ganaug.samplers import ResumableRandomSampler


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[StudyDirection]) -> bool:
    """True if `a` is at least as good as `b` in every objective and better in one."""
    sign = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    better_or_equal = all(s * x >= s * y for s, x, y in zip(sign, a, b))
    return better_or_equal and any(s * x > s * y for s, x, y in zip(sign, a, b))


def rank_trials(trials: Sequence[FrozenTrial], directions: Sequence[StudyDirection]) -> list[FrozenTrial]:
    """Best first: dominated by the fewest others, then the first objective, then the earlier trial."""
    sign = 1.0 if directions[0] == StudyDirection.MAXIMIZE else -1.0

    def key(trial: FrozenTrial) -> tuple[int, float, int]:
        dominated_by = sum(dominates(other.values, trial.values, directions) for other in trials if other is not trial)
        return dominated_by, -sign * trial.values[0], trial.number

    return sorted(trials, key=key)


class ProposingSampler(BaseSampler):
    """An Optuna sampler whose subclasses propose whole genomes (`propose`); random draws before that."""

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.seed = seed
        self._random = ResumableRandomSampler(seed)
        self.lineage: dict[int, tuple[int, list[int]]] = {}

    def propose(self, study: Study, number: int) -> tuple[Genome, int, list[int]] | None:
        """Trial `number`'s genome, its generation and its parents' trial numbers; None during the random start."""
        raise NotImplementedError

    def finished(self, study: Study) -> list[FrozenTrial]:
        """Complete and pruned trials with a value and every gene, in trial order (pruned ones keep their partial value)."""
        genes = set(self.space.choices)
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return sorted((t for t in trials if t.values is not None and genes <= set(t.params)), key=lambda t: t.number)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.space.distributions()

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        proposal = self.propose(study, trial.number)
        if proposal is None:  # the random start: every gene comes from sample_independent's random draws
            self.lineage[trial.number] = (0, [])
            return {}
        genome, generation, parents = proposal
        self.lineage[trial.number] = (generation, parents)
        return {name: genome[name] for name in search_space if name in genome}

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def take_draws(self, number: int) -> list[str]:
        """The parameters trial `number` drew at random (the study records them; see `ganaug.samplers`)."""
        return self._random.take_draws(number)
