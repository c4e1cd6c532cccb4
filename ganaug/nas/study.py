"""The Optuna study behind a search: its storage spec, and how a search trial is asked and told.

The loop itself (storage and resume, ask -> evaluate -> tell, pruning through the study's storage,
interrupted trials redone) is `ganaug.study`, shared with GAN tuning. Results do not depend on which
worker finishes first: the same seed, config and `parallel` give the same trials with any executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ganaug.classifier import ArchSpec
from ganaug.executor import Executor, Unpack, as_executor
from ganaug.nas.config import SearchConfig
from ganaug.nas.evaluator import TrialResult
from ganaug.nas.space import SearchSpace
from ganaug.nas.strategy import GENERATION_ATTR, PARENTS_ATTR, make_pruner, make_sampler
from ganaug.pruning import TrialPruning
from ganaug.runs import NasPaths
from ganaug.study import Outcome, SharedStudy, StudySpec, TrialWork, fingerprint, run_trials
from ganaug.study import open_study as open_shared_study

STUDY_NAME = "nas"
ROLE = "search"
# Options that may change between an interrupted search and its resumption.
RESUMABLE_CHANGES = frozenset({"n_trials", "parallel", "resume", "final_steps", "correlation_sample", "verify_top_k"})

# (arch, pruning, augmentation strength) -> result; runs wherever the executor puts it
TrialTask = Callable[[ArchSpec, TrialPruning | None, float], TrialResult]
# called with each finished trial as Optuna stored it
TrialHook = Callable[[FrozenTrial], None]


def study_fingerprint(cfg: SearchConfig, data_hashes: Sequence[str]) -> str:
    """What must match for a stored study to be resumed: the config (bar budget options) and the data."""
    return fingerprint(cfg.model_dump(mode="json"), RESUMABLE_CHANGES, data=list(data_hashes))


def open_study(cfg: SearchConfig, space: SearchSpace, folder: Path | None, fingerprint: str) -> SharedStudy:
    """Create the study, or reopen the one stored under `folder` (same fingerprint), with our sampler."""
    path = None if cfg.storage == "memory" or folder is None else NasPaths(Path(folder)).storage(cfg.storage)
    spec = StudySpec(name=STUDY_NAME, label="search study", storage=cfg.storage if path is not None else "memory",
                     path=path, fingerprint=fingerprint, resumable=RESUMABLE_CHANGES, resume=cfg.resume,
                     directions=tuple(cfg.directions()), keep_on_redo=(GENERATION_ATTR, PARENTS_ATTR))
    return open_shared_study(spec, make_sampler(cfg, space), make_pruner(cfg))


def objective_values(result: TrialResult, objectives: Sequence[str]) -> list[float]:
    extra = {"params": float(result.parameter_count), "latency": result.latency_ms}
    return [result.accuracy] + [float(extra[name]) for name in objectives]  # type: ignore[arg-type]


def result_attrs(result: TrialResult) -> dict[str, Any]:
    return {
        "fitness": result.accuracy, "parameter_count": result.parameter_count, "latency_ms": result.latency_ms,
        "seconds": result.seconds, "steps_run": result.steps_run, "val_curve": list(result.val_curve),
    }


def map_trials(executor: Executor | None, task: Callable[..., Any], calls: Sequence[tuple[Any, ...]], name: str,
               labels: Sequence[str]) -> list[Any]:
    """`task(*args)` for every args tuple of `calls` through `executor`; a call that raises gives its exception."""
    return as_executor(executor).map(Unpack(task), list(calls), name=name, labels=labels, return_exceptions=True)


def trial_label(kind: str, arch: ArchSpec) -> str:
    """A unit of search work's display name, e.g. `nas_trial 3: 16k3max | batch relu drop0 head0`."""
    from ganaug.nas.report import arch_summary

    return f"{kind}: {arch_summary(arch)}"


def _draw(space: SearchSpace, fidelity: str) -> Callable[[optuna.Trial], tuple[ArchSpec, float]]:
    def draw(trial: optuna.Trial) -> tuple[ArchSpec, float]:
        arch, augment = space.decode(trial.params), space.augment_strength(trial.params)
        lineage = getattr(trial.study.sampler, "lineage", None)  # AgingEvolutionSampler, GanSampler: (generation, parents)
        generation, parents = lineage.pop(trial.number, (0, [])) if lineage is not None else (None, [])
        if GENERATION_ATTR in trial.user_attrs:  # a redone trial keeps the lineage of the one that was interrupted
            generation, parents = trial.user_attrs[GENERATION_ATTR], trial.user_attrs.get(PARENTS_ATTR, [])
        for key, value in {"fidelity": fidelity, "arch": arch.to_json(), "augment": augment,
                           GENERATION_ATTR: generation, PARENTS_ATTR: parents}.items():
            trial.set_user_attr(key, value)
        return arch, augment

    return draw


def _outcome(objectives: Sequence[str]) -> Callable[[optuna.Trial, Any, Any], Outcome]:
    def outcome(trial: optuna.Trial, point: Any, result: TrialResult | Exception) -> Outcome:
        if isinstance(result, Exception):  # a trial that raises is recorded and the search goes on
            return Outcome.failed(result, f"trial {trial.number}")
        readings = list(enumerate(result.val_curve, start=1))
        if result.state == "pruned":
            return Outcome("pruned", attrs=result_attrs(result), readings=readings)
        return Outcome("complete", objective_values(result, objectives), result_attrs(result), readings)

    return outcome


def _args(trial: optuna.Trial, point: tuple[ArchSpec, float], pruning: TrialPruning | None) -> tuple[Any, ...]:
    arch, augment = point
    return arch, pruning, augment


def run_search_trials(
    study: SharedStudy,
    space: SearchSpace,
    task: TrialTask,
    n_trials: int,
    parallel: int = 1,
    executor: Executor | None = None,
    objectives: Sequence[str] = (),
    fidelity: str = "full",
    on_trial: TrialHook | None = None,
) -> None:
    """Ask, evaluate and tell until the study holds `n_trials` finished search trials."""
    work = TrialWork(role=ROLE, name="nas_trial", draw=_draw(space, fidelity), task=task, args=_args,
                     outcome=_outcome(tuple(objectives)), distributions=space.distributions(),
                     label=lambda trial, point: trial_label(f"nas_trial {trial.number}", point[0]))
    run_trials(study, work, n_trials, parallel, executor, on_trial=on_trial)
