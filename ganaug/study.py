"""One Optuna study loop for architecture search (`ganaug.nas`) and GAN tuning (`ganaug.tune`).

- **Storage and resume, one rule.** A study lives in one file of its stage's folder (a journal
  file or SQLite; or in memory, not kept). `resume: true` reopens the stored study when its
  fingerprint (the config bar the options that may change, and the data) matches, and starts one
  when there is none; a stored study run with other options or data is refused with a message that
  names the file and the options. `resume: false` replaces it. Trials that were running when a
  process stopped are recorded as failed (`interrupted`; they do not count towards `n_trials`) and
  their points are queued again, so they are redone first.
- **Ask -> evaluate -> tell.** Trials are asked in batches of `parallel`, evaluated through a
  `ganaug.executor` executor (each batch one `map`), and told in the order they were asked. A trial
  that raises is recorded as failed with its error and the study goes on.
- **Pruning** goes through the study's storage (`ganaug.pruning.TrialPruning`): a worker reports
  into its own trial and the pruner judges it against the trials told before its batch. So results
  do not depend on which worker finishes first: the same seed, config and `parallel` give the same
  trials with any executor.
- **Trial rows**: one row per trial, from the stage's row function, written atomically as Parquet.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import optuna
import pyarrow as pa
from optuna.trial import FrozenTrial, TrialState

from ganaug.errors import ConfigError, DataError
from ganaug.executor import Executor, Unpack, as_executor
from ganaug.pruning import StorageKind, TrialPruning, open_storage, quiet_optuna
from ganaug.samplers import RANDOM_DRAW_ATTR, take_random_draws
from ganaug.store import write_table

log = logging.getLogger(__name__)

FINGERPRINT_ATTR = "fingerprint"
INTERRUPTED_ATTR = "interrupted"
ERROR_ATTR = "error"
ROLE_ATTR = "role"
Point = TypeVar("Point")


def fingerprint(config: dict[str, Any], resumable: frozenset[str], **data: Any) -> str:
    """What must match for a stored study to be resumed: the config (bar the `resumable` options) and the data."""
    dumped = {key: value for key, value in config.items() if key not in resumable}
    return json.dumps({"config": dumped, **data}, sort_keys=True)


@dataclass(frozen=True)
class StudySpec:
    """Where a study lives and what may resume it.

    `label` names it in messages ("search study"); `name_meaning` says what its name stands for
    ("this dataset and seed's"), for a file holding a study of another name."""

    name: str
    label: str
    storage: StorageKind
    path: Path | None
    fingerprint: str
    resumable: frozenset[str]
    resume: bool = True
    directions: tuple[str, ...] = ("maximize",)
    name_meaning: str = "this one"
    keep_on_redo: tuple[str, ...] = ()  # user attributes an interrupted trial passes to its redo

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else "memory"


class SharedStudy(optuna.Study):
    """An Optuna study that knows its storage's location, so trial workers can open it (`TrialPruning`)."""

    def __init__(self, spec: StudySpec, storage: optuna.storages.BaseStorage, storage_path: str,
                 sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner) -> None:
        super().__init__(study_name=spec.name, storage=storage, sampler=sampler, pruner=pruner)
        self.spec = spec
        self.shared_storage = storage
        self.storage_path = storage_path

    def pruning(self, number: int, before: int, judge_from: int = 0) -> TrialPruning | None:
        """Trial `number`'s handle on the pruner (None when nothing is pruned: no pruner, or several objectives)."""
        if len(self.directions) > 1 or isinstance(self.pruner, optuna.pruners.NopPruner):
            return None
        return TrialPruning(study_name=self.study_name, study_fingerprint=self.spec.fingerprint,
                            storage_kind=self.spec.storage, storage_path=self.storage_path,
                            pruner=_fresh(self.pruner), number=number, before=before, judge_from=judge_from)

    def frozen(self, number: int) -> FrozenTrial:
        """Trial `number` as the storage holds it now."""
        return self.get_trials(deepcopy=False)[number]


def _fresh(pruner: optuna.pruners.BasePruner) -> optuna.pruners.BasePruner:
    """A pruner of the same kind and settings for one trial's worker (the study's own is never asked: workers of one
    batch keep their pruners' state apart)."""
    return copy.deepcopy(pruner)


def open_study(spec: StudySpec, sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
               on_replace: Callable[[], None] | None = None,
               on_interrupted: Callable[[int], None] | None = None) -> SharedStudy:
    """Create the study, or reopen the stored one (same fingerprint); interrupted trials failed and queued again.

    `on_replace` removes what belonged to a stored study that `resume: false` replaces; `on_interrupted(number)`
    what an interrupted trial left behind."""
    quiet_optuna()
    if spec.path is not None and spec.storage != "memory":
        if not spec.resume and spec.path.exists():
            log.warning("resume=false: replacing the %s stored at %s", spec.label, spec.path)
            spec.path.unlink()
            if on_replace is not None:
                on_replace()
        spec.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        stored_before = spec.path is not None and spec.path.is_file() and spec.path.stat().st_size > 0
        storage, storage_path = open_storage(spec.storage, spec.path)
        names = [stored.study_name for stored in storage.get_all_studies()]
        if stored_before and not names:  # e.g. a journal whose lines Optuna cannot read: never write into it
            raise ValueError("it holds no study Optuna can read")
        if names and spec.name not in names:
            raise ConfigError(f"the {spec.label} stored at {spec.where} ({', '.join(names)}) is not {spec.name_meaning} "
                              f"({spec.name}); set resume=false (--no-resume) to start over, or use another run folder")
        optuna.create_study(study_name=spec.name, storage=storage, directions=list(spec.directions), load_if_exists=True)
        study = SharedStudy(spec, storage, storage_path, sampler, pruner)
    except ConfigError:
        raise
    except Exception as err:  # a damaged file, or one from an Optuna whose format this one cannot read
        raise DataError(f"cannot open the {spec.label} stored at {spec.where}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}; set resume=false (--no-resume) to start over") from None
    _check_fingerprint(study, spec)
    _redo_interrupted(study, spec, on_interrupted)
    return study


def _check_fingerprint(study: SharedStudy, spec: StudySpec) -> None:
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        study.set_user_attr(FINGERPRINT_ATTR, spec.fingerprint)
        return
    if stored == spec.fingerprint:
        return
    try:
        before, now = json.loads(stored), json.loads(spec.fingerprint)
        changed = sorted(key for key in {*before["config"], *now["config"]}
                         if before["config"].get(key) != now["config"].get(key))
        data_changed = {k: v for k, v in before.items() if k != "config"} != {k: v for k, v in now.items() if k != "config"}
    except (ValueError, KeyError, TypeError):
        changed, data_changed = [], True
    what = [f"other options ({', '.join(changed)})"] if changed else []
    what += ["other data"] if data_changed or not changed else []
    raise ConfigError(f"the {spec.label} stored at {spec.where} was run with {' and on '.join(what)}; only "
                      f"{', '.join(sorted(spec.resumable))} may change when resuming; set resume=false (--no-resume) "
                      "to start over, or use another run folder")


def _redo_interrupted(study: SharedStudy, spec: StudySpec, on_interrupted: Callable[[int], None] | None) -> None:
    storage = study.shared_storage
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning("%s trial %d was interrupted; it is redone", spec.label, trial.number)
        storage.set_trial_user_attr(storage.get_trial_id_from_study_id_trial_number(study_id, trial.number),
                                    INTERRUPTED_ATTR, True)
        study.tell(trial.number, state=TrialState.FAIL)
        if on_interrupted is not None:
            on_interrupted(trial.number)
        if trial.params:
            kept = {key: trial.user_attrs[key] for key in spec.keep_on_redo if key in trial.user_attrs}
            study.enqueue_trial(trial.params, user_attrs=kept or None)


def counts(trial: FrozenTrial, role: str) -> bool:
    """A trial of `role` that counts towards the budget: complete, pruned, or failed with an error (an interrupted
    one is redone and does not count)."""
    if trial.user_attrs.get(ROLE_ATTR, role) != role:
        return False
    if trial.state == TrialState.FAIL:
        return ERROR_ATTR in trial.user_attrs
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Outcome:
    """How a trial ended, for `tell`: its objective values (complete), pruned, or the error it raised; the user
    attributes to record; and its readings `(step, value)` for the pruner's intermediate values."""

    state: Literal["complete", "pruned", "failed"]
    values: Sequence[float] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    readings: Sequence[tuple[int, float]] = ()

    @classmethod
    def failed(cls, error: BaseException, label: str, **attrs: Any) -> Outcome:
        log.warning("%s failed: %s: %s", label, type(error).__name__, error)
        return cls("failed", attrs={ERROR_ATTR: f"{type(error).__name__}: {error}", **attrs})


def ask(study: SharedStudy, draw: Callable[[optuna.Trial], Point], role: str,
        distributions: dict[str, Any] | None = None) -> tuple[optuna.Trial, Point]:
    """A new trial (a queued point first) and its point, `draw(trial)`; records what it drew at random."""
    trial = study.ask(fixed_distributions=distributions)
    point = draw(trial)
    trial.set_user_attr(ROLE_ATTR, role)
    drawn = take_random_draws(study.sampler, trial.number)
    if drawn:
        trial.set_user_attr(RANDOM_DRAW_ATTR, drawn)
    return trial, point


def tell(study: SharedStudy, trial: optuna.Trial, outcome: Outcome) -> FrozenTrial:
    """Record `outcome` in the study: its attributes, the readings its worker did not report, and its state."""
    for key, value in outcome.attrs.items():
        trial.set_user_attr(key, value)
    if outcome.state == "failed":
        study.tell(trial, state=TrialState.FAIL)
        return study.frozen(trial.number)
    if len(study.directions) == 1:
        stored = study.frozen(trial.number).intermediate_values
        for step, value in outcome.readings:
            if step not in stored:
                trial.report(value, step)
    if outcome.state == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, list(outcome.values))
    return study.frozen(trial.number)


@dataclass(frozen=True)
class TrialWork:
    """What a stage's trials are: how to draw a point, the unit of work and its arguments, how a result is told.

    `args(trial, point, pruning)` gives the arguments of `task` (picklable when the executor runs it elsewhere);
    `outcome(trial, point, result or exception)` the `Outcome` to tell; `label(trial, point)` a unit's display name."""

    role: str
    name: str
    draw: Callable[[optuna.Trial], Any]
    task: Callable[..., Any]
    args: Callable[[optuna.Trial, Any, TrialPruning | None], tuple[Any, ...]]
    outcome: Callable[[optuna.Trial, Any, Any], Outcome]
    label: Callable[[optuna.Trial, Any], str]
    distributions: dict[str, Any] | None = None
    judge_from: Callable[[optuna.Trial], int] | None = None


def run_trials(study: SharedStudy, work: TrialWork, n_trials: int, parallel: int = 1, executor: Executor | None = None,
               workers: int = 1, on_trial: Callable[[FrozenTrial], None] | None = None) -> int:
    """Ask, evaluate and tell until the study holds `n_trials` counted trials of `work.role`; the number done before."""
    done = before = sum(counts(t, work.role) for t in study.get_trials(deepcopy=False))
    while done < n_trials:
        batch = [ask(study, work.draw, work.role, work.distributions) for _ in range(min(parallel, n_trials - done))]
        first = min(trial.number for trial, _ in batch)
        calls = []
        for trial, point in batch:
            judge_from = work.judge_from(trial) if work.judge_from is not None else 0
            calls.append(work.args(trial, point, study.pruning(trial.number, first, judge_from)))
        results = as_executor(executor, workers).map(Unpack(work.task), calls, name=work.name,
                                                     labels=[work.label(trial, point) for trial, point in batch],
                                                     return_exceptions=True)
        for (trial, point), result in zip(batch, results):
            told = tell(study, trial, work.outcome(trial, point, result))
            if on_trial is not None:
                on_trial(told)
        done += len(batch)
    return before


def write_rows(rows: Sequence[dict[str, Any]], schema: pa.Schema, path: Path) -> Path:
    """Trial rows as a Parquet table of `schema` (keys outside it are left out), written atomically."""
    return write_table(pa.Table.from_pylist(list(rows), schema=schema), path)
