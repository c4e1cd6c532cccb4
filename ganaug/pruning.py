"""Asking an Optuna pruner from a trial's worker, through the study's own storage.

NAS trials and GAN tuning trials train in threads, Prefect tasks or Dask workers, away from the
process that asks and tells. A worker gets a `TrialPruning`: where the study is stored, the trial's
number, and the first trial of its batch. It opens the study on that storage (Optuna's distributed
set-up: every process loads the study by name from one storage), reports each reading into its own
trial there and asks `should_prune`, so a pruned trial's readings are in the study when it is told.

The pruner sees the study through `BatchView`, a storage that lists only the trials told before the
trial's batch (and the trial itself); everything else goes to the shared storage unchanged. Trials
of one batch therefore never judge each other, whatever order their workers run in, and the same
seed and `parallel` give the same trials with any executor (a bare shared study would let
successive halving compare a trial with the rungs its batch-mates happened to reach first).
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict

from ganaug.errors import ConfigError

StorageKind = Literal["memory", "journal", "sqlite"]

# storages opened in this process, by the key a `TrialPruning` names them with (threads share them; an
# in-memory study can only be reached this way)
_OPEN: weakref.WeakValueDictionary[str, BaseStorage] = weakref.WeakValueDictionary()


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO on its own handler; ganaug reports progress itself."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def open_storage(kind: StorageKind, path: Path | None) -> tuple[BaseStorage, str]:
    """A new storage of `kind` (at `path` for the file kinds) and the key its trials' workers find it by (in memory:
    a key of this process only, so its workers must be threads of this process)."""
    if kind == "memory" or path is None:
        storage: BaseStorage = InMemoryStorage()
        key = f"memory:{uuid.uuid4().hex}"
    elif kind == "journal":
        storage, key = JournalStorage(JournalFileBackend(str(path))), str(path)
    else:
        storage, key = RDBStorage(f"sqlite:///{path}"), str(path)
    _OPEN[key] = storage
    return storage, key


def reopen_storage(kind: StorageKind, path: str) -> BaseStorage:
    """The storage a study keeps at `path`, opened again by a worker in another process."""
    if kind == "memory":
        raise ConfigError("storage 'memory' keeps the study inside the process that runs it; trials pruned in other "
                          "processes (Dask workers) need storage 'journal' or 'sqlite'")
    if not Path(path).is_file():
        raise ConfigError(f"the study's storage {path} cannot be reached from this worker; with workers on other "
                          "machines, keep the study on a file system they share")
    return RDBStorage(f"sqlite:///{path}") if kind == "sqlite" else JournalStorage(JournalFileBackend(path))


class BatchView(BaseStorage):
    """The shared storage as a pruner of one trial sees it: trials numbered below `before`, and trial `number`."""

    def __init__(self, shared: BaseStorage, before: int, number: int) -> None:
        self.shared, self.before, self.number = shared, before, number

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return [t for t in self.shared.get_all_trials(study_id, deepcopy, states)
                if t.number < self.before or t.number == self.number]

    # everything else is the shared storage's
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self.shared.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self.shared.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.shared.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.shared.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.shared.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.shared.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.shared.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.shared.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.shared.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:
        return self.shared.get_all_studies()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self.shared.create_new_trial(study_id, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self.shared.set_trial_param(trial_id, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.shared.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self.shared.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.shared.set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.shared.set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.shared.set_trial_system_attr(trial_id, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self.shared.get_trial(trial_id)


class TrialPruning(BaseModel):
    """What a trial's worker needs to ask the pruner: the study's storage and name, a fresh pruner, the trial's number,
    the first number of its batch (the pruner sees the trials before it), and the first step it may be stopped at.

    `storage_path` locates the storage: its file, or (in memory) the key of a storage of this process. It says
    where, not what: a cache key leaves it out, and `study_fingerprint` (the study's config and data) stands in.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    study_name: str
    study_fingerprint: str
    storage_kind: StorageKind
    storage_path: str
    pruner: optuna.pruners.BasePruner
    number: int
    before: int
    judge_from: int = 0

    def shared_storage(self) -> BaseStorage:
        """The study's storage: the one this process opened, else (another process) its file opened again."""
        found = _OPEN.get(self.storage_path)
        return found if found is not None else reopen_storage(self.storage_kind, self.storage_path)

    def reporter(self, unit: str, reading: str) -> Callable[[int, float], None]:
        """A `(step, value)` callback: report the value into the trial; raise `optuna.TrialPruned` when the pruner says
        stop (steps below `judge_from` are reported and judged, never stopped). `unit` and `reading` name the step and
        the value in the message: "pruned at <unit> 4 at <reading> 0.1234"."""
        quiet_optuna()
        view = BatchView(self.shared_storage(), self.before, self.number)
        study = optuna.load_study(study_name=self.study_name, storage=view, pruner=self.pruner,
                                  sampler=optuna.samplers.RandomSampler(0))
        trial_id = view.get_trial_id_from_study_id_trial_number(view.get_study_id_from_name(self.study_name), self.number)
        trial = optuna.trial.Trial(study, trial_id)

        def on_reading(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune() and step >= self.judge_from:
                raise optuna.TrialPruned(f"pruned at {unit} {step} at {reading} {value:.4f}")

        return on_reading
