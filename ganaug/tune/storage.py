"""Where a tuning study lives and how it is resumed; the pruner's view of the study on a trial's worker.

The study is stored in `<run>/tune/study.db` (Optuna's RDB storage on SQLite) unless
`storage: memory`. `resume: true` reopens it: the stored config must match (bar the options in
`RESUMABLE_CHANGES`) and so must the dataset; trials that were running when the process stopped are
recorded as failed (they do not count towards `n_trials`) and their points are queued again, so
they are redone first. Without `resume`, a stored study is replaced.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState, create_trial

from ganaug.errors import ConfigError, DataError
from ganaug.pruning import quiet_optuna, replay_reporter
from ganaug.runs import TUNE_STUDY_FILE
from ganaug.samplers import resumable_start
from ganaug.tune.config import TuneConfig

log = logging.getLogger(__name__)

STUDY_FILE = TUNE_STUDY_FILE
# Options that may change between an interrupted tuning and its resumption.
RESUMABLE_CHANGES = {"n_trials", "parallel", "resume", "cpu_threads"}
FINGERPRINT_ATTR = "fingerprint"
INTERRUPTED_ATTR = "interrupted"


def fingerprint(cfg: TuneConfig, dataset_hash: str) -> str:
    """What must match for a stored study to be resumed: the config (bar budget options) and the dataset."""
    dumped = {key: value for key, value in cfg.model_dump(mode="json").items() if key not in RESUMABLE_CHANGES}
    return json.dumps({"config": dumped, "dataset": dataset_hash}, sort_keys=True)


def _storage(cfg: TuneConfig, root: Path) -> str | None:
    """The storage URL (None = in memory); without `resume`, a stored study and its trial folders are removed."""
    if cfg.storage == "memory":
        return None
    path = root / STUDY_FILE
    if cfg.resume and not path.is_file():
        raise ConfigError(f"resume: no tuning study is stored at {path}; run `ganaug tune` without --resume to start one")
    if not cfg.resume and path.exists():
        log.warning("resume=false: replacing the tuning study stored at %s (and its trial folders)", path)
        path.unlink()
        shutil.rmtree(root / "trials", ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def open_study(cfg: TuneConfig, root: Path, study_name: str, dataset_hash: str) -> optuna.Study:
    """A new study, or the one stored under `root` (resume); interrupted trials failed and queued again."""
    quiet_optuna()
    storage = _storage(cfg, root)
    # its random start resumable: a study resumed inside it goes on with new draws, not its first ones again
    sampler = resumable_start(optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=min(5, max(1, cfg.n_trials // 3))), cfg.seed)
    if storage is not None and cfg.resume:
        try:
            names = optuna.get_all_study_names(storage)
        except (ValueError, RuntimeError, optuna.exceptions.StorageInternalError) as err:
            raise DataError(f"cannot open the tuning study {root / STUDY_FILE}: {err}") from None
        if names != [study_name]:
            raise ConfigError(f"the tuning study stored at {root / STUDY_FILE} ({', '.join(names) or 'none'}) is not "
                              f"this dataset and seed's ({study_name}); drop --resume to start over")
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler, pruner=cfg.make_pruner(), study_name=study_name,
                                    storage=storage, load_if_exists=cfg.resume)
    except (ValueError, RuntimeError, optuna.exceptions.StorageInternalError) as err:
        raise DataError(f"cannot open the tuning study {root / STUDY_FILE}: {err}") from None
    expected = fingerprint(cfg, dataset_hash)
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is None:
        study.set_user_attr(FINGERPRINT_ATTR, expected)
    elif stored != expected:
        changed = sorted(key for key, value in json.loads(expected)["config"].items()
                         if json.loads(stored)["config"].get(key) != value)
        raise ConfigError(f"the tuning study stored at {root / STUDY_FILE} was run with other options "
                          f"({', '.join(changed) or 'the dataset'}); only {', '.join(sorted(RESUMABLE_CHANGES))} may change "
                          "on --resume; drop --resume to start over")
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        log.warning("tuning trial %d was interrupted; it is redone", trial.number)
        optuna.Trial(study, trial._trial_id).set_user_attr(INTERRUPTED_ATTR, True)
        study.tell(trial.number, state=TrialState.FAIL)
        shutil.rmtree(root / "trials" / f"{trial.number:04d}", ignore_errors=True)
        if trial.params:
            warm = {key: value for key, value in trial.user_attrs.items() if key == "warm_from"}
            study.enqueue_trial(trial.params, user_attrs=warm or None)
    return study


def counts(trial: FrozenTrial) -> bool:
    """A finished trial (complete, pruned, or failed by an error; not one that was interrupted)."""
    if trial.state == TrialState.FAIL:
        return not trial.user_attrs.get(INTERRUPTED_ATTR, False)
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def trial_row(trial: FrozenTrial) -> dict[str, Any]:
    """A trial as a row of trials.parquet (its readings and timings are user attributes)."""
    attrs = trial.user_attrs
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
    return {"number": trial.number, "state": state, "warm_from": attrs.get("warm_from"),
            "params": json.dumps(trial.params, sort_keys=True), "rung_steps": list(attrs.get("rung_steps", [])),
            "rung_utility": list(attrs.get("rung_utility", [])), "rung_cas": list(attrs.get("rung_cas", [])),
            "rung_collapsed": list(attrs.get("rung_collapsed", [])), "utility": trial.value if state == "complete" else None,
            "seconds": float(attrs.get("seconds", 0.0)), "finished_after": float(attrs.get("finished_after", 0.0)),
            "error": attrs.get("error")}


def last_reading(row: dict[str, Any]) -> tuple[str, str, str]:
    """A trials.parquet row's last rung as text: (utility, CAS on val, collapsed classes); '-' where there is none."""
    if not row["rung_utility"]:
        return "-", "-", "-"
    cas = f"{row['rung_cas'][-1]:.4f}" if row.get("rung_cas") else "-"
    collapsed = str(row["rung_collapsed"][-1]) if row.get("rung_collapsed") else "-"
    return f"{row['rung_utility'][-1]:.4f}", cas, collapsed


def describe_reading(row: dict[str, Any]) -> str:
    """'utility U (CAS on val C, K classes collapsed)' for progress lines."""
    utility, cas, collapsed = last_reading(row)
    if cas == "-":
        return utility
    return f"utility {utility} (CAS on val {cas}, {collapsed} {'class' if collapsed == '1' else 'classes'} collapsed)"


PLACEHOLDER = create_trial(state=TrialState.FAIL)


@dataclass(frozen=True)
class TrialPruning:
    """What a trial's worker needs to ask the pruner: the config (a fresh pruner), the study's name, the trial's
    number, the trials finished before its batch, and the first GAN step at which it may be pruned.

    The worker replays them into a small in-memory study under the same name, numbered as in the study
    (placeholders fill the gaps), so Hyperband puts the trial in the same bracket as the study would,
    and successive halving sees the same rungs; a fresh pruner per trial keeps threads apart.
    """

    cfg: TuneConfig
    study_name: str
    number: int
    finished: tuple[FrozenTrial, ...] = ()
    judge_from: int = 0

    def reporter(self) -> Any:
        """A `(step, utility)` callback: report, raise `optuna.TrialPruned` when the pruner says stop."""
        by_number = {trial.number: trial for trial in self.finished}
        replayed = [by_number.get(number, PLACEHOLDER) for number in range(self.number)]
        return replay_reporter(self.cfg.make_pruner(), replayed, "step", "CAS on val", study_name=self.study_name,
                               judge_from=self.judge_from)
