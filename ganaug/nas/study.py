"""The Optuna study behind a search: storage and resume, and the ask -> evaluate -> tell loop.

Trials are asked in batches of `parallel`, evaluated through an optional `ganaug.executor`
executor (each batch one `map`), and told in the order they were asked. Results therefore do not
depend on which worker finishes first: the same seed, config and `parallel` give the same trials
with any executor.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from ganaug.classifier import ArchSpec
from ganaug.errors import ConfigError, DataError
from ganaug.executor import Executor, Unpack, as_executor
from ganaug.nas.config import SearchConfig
from ganaug.nas.evaluator import PruneContext, TrialResult
from ganaug.nas.space import SearchSpace
from ganaug.nas.strategy import GENERATION_ATTR, PARENTS_ATTR, make_pruner, make_sampler
from ganaug.pruning import quiet_optuna
from ganaug.runs import NAS_STORAGE_FILES

log = logging.getLogger(__name__)

STUDY_NAME = "nas"
STORAGE_FILES = NAS_STORAGE_FILES
# Options that may change between an interrupted search and its resumption.
RESUMABLE_CHANGES = {"n_trials", "parallel", "resume", "final_steps", "correlation_sample", "verify_top_k"}

# (arch, prune context, augmentation strength) -> result; runs wherever the executor puts it
TrialTask = Callable[[ArchSpec, PruneContext | None, float], TrialResult]
# called with each finished trial as Optuna stored it
TrialHook = Callable[[FrozenTrial], None]


def study_fingerprint(cfg: SearchConfig, data_hashes: Sequence[str]) -> str:
    """What must match for a stored study to be resumed: the config (bar budget options) and the data."""
    dumped = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RESUMABLE_CHANGES}
    return json.dumps({"config": dumped, "data": list(data_hashes)}, sort_keys=True)


def _storage(cfg: SearchConfig, folder: Path | None) -> optuna.storages.BaseStorage | str | None:
    if cfg.storage == "memory" or folder is None:
        return None
    path = folder / STORAGE_FILES[cfg.storage]
    if not cfg.resume and path.exists():
        log.info("resume=false: starting over, removing %s", path)
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.storage == "sqlite":
        return f"sqlite:///{path}"
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(cfg: SearchConfig, space: SearchSpace, folder: Path | None, fingerprint: str) -> optuna.Study:
    """Create the study, or reopen the one stored under `folder` (same fingerprint), with our sampler."""
    quiet_optuna()
    storage = _storage(cfg, folder)
    try:
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, sampler=make_sampler(cfg, space), pruner=make_pruner(cfg),
            directions=cfg.directions(), load_if_exists=True,
        )
    except (ValueError, RuntimeError, optuna.exceptions.StorageInternalError) as err:
        raise DataError(f"cannot open the search study in {folder}: {err}") from None
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif stored != fingerprint:
        raise ConfigError(
            f"the study stored in {folder} was run with a different config or data; "
            "set resume=false (--no-resume) to start over, or use another run folder"
        )
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        log.warning("trial %d was interrupted; recording it as failed", trial.number)
        study.tell(trial.number, state=TrialState.FAIL)
    return study


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Finished search trials; a trial that failed by interruption (no error recorded) is redone."""
    if trial.user_attrs.get("role") != "search":
        return False
    if trial.state == TrialState.FAIL:
        return "error" in trial.user_attrs
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


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


def prune_context(study: optuna.Study, fidelity: str) -> PruneContext | None:
    """Snapshot of finished trials at `fidelity` for the pruner (None for several objectives)."""
    if len(study.directions) > 1 or isinstance(study.pruner, optuna.pruners.NopPruner):
        return None
    history = tuple(
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.user_attrs.get("fidelity") == fidelity and t.intermediate_values
    )
    return PruneContext(study.pruner, history)


def _ask(study: optuna.Study, space: SearchSpace, fidelity: str) -> tuple[optuna.Trial, ArchSpec, float]:
    trial = study.ask(fixed_distributions=space.distributions())
    arch, augment = space.decode(trial.params), space.augment_strength(trial.params)
    generation, parents = None, []
    lineage = getattr(study.sampler, "lineage", None)  # AgingEvolutionSampler, GanSampler: (generation, parents)
    if lineage is not None:
        generation, parents = lineage.pop(trial.number, (0, []))
    for key, value in {"role": "search", "fidelity": fidelity, "arch": arch.to_json(), "augment": augment,
                       GENERATION_ATTR: generation, PARENTS_ATTR: parents}.items():
        trial.set_user_attr(key, value)
    return trial, arch, augment


def _tell(study: optuna.Study, trial: optuna.Trial, result: TrialResult | Exception, objectives: Sequence[str]) -> None:
    if isinstance(result, Exception):  # a trial that raises is recorded and the search goes on
        log.warning("trial %d failed: %s: %s", trial.number, type(result).__name__, result)
        trial.set_user_attr("error", f"{type(result).__name__}: {result}")
        study.tell(trial, state=TrialState.FAIL)
        return
    for key, value in result_attrs(result).items():
        trial.set_user_attr(key, value)
    if result.state == "pruned":
        for number, value in enumerate(result.val_curve, start=1):
            trial.report(value, number)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        if len(study.directions) == 1:
            for number, value in enumerate(result.val_curve, start=1):
                trial.report(value, number)
        study.tell(trial, objective_values(result, objectives))


def run_search_trials(
    study: optuna.Study,
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
    done = sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False))
    while done < n_trials:
        batch = [_ask(study, space, fidelity) for _ in range(min(parallel, n_trials - done))]
        prune = prune_context(study, fidelity)
        results = map_trials(executor, task, [(arch, prune, augment) for _, arch, augment in batch], "nas_trial",
                             [trial_label(f"nas_trial {trial.number}", arch) for trial, arch, _ in batch])
        for (trial, _, _), result in zip(batch, results):
            _tell(study, trial, result, objectives)
            if on_trial is not None:
                on_trial(study.get_trials(deepcopy=False)[trial.number])
        done += len(batch)
