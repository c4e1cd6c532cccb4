"""Where a tuning study lives and what may resume it; its trials as rows of trials.parquet.

The study is stored in `<run>/tune/study.db` (Optuna's RDB storage on SQLite) unless
`storage: memory`. The loop and its resume rule are `ganaug.study`'s, shared with the architecture
search: `resume: true` (the default) reopens a stored study whose config (bar the options in
`RESUMABLE_CHANGES`) and dataset match, and starts one when there is none; trials that were running
when the process stopped are recorded as failed (they do not count towards `n_trials`), their
folders removed and their points queued again, so they are redone first. `resume: false` replaces a
stored study and its trial folders.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from ganaug.runs import TunePaths
from ganaug.samplers import tpe_sampler
from ganaug.study import SharedStudy, StudySpec, counts as counted, fingerprint as study_fingerprint, open_study as open_shared_study
from ganaug.tune.config import TuneConfig

log = logging.getLogger(__name__)

ROLE = "tune"
# Options that may change between an interrupted tuning and its resumption.
RESUMABLE_CHANGES = frozenset({"n_trials", "parallel", "resume", "cpu_threads"})


def fingerprint(cfg: TuneConfig, dataset_hash: str) -> str:
    """What must match for a stored study to be resumed: the config (bar budget options) and the dataset."""
    return study_fingerprint(cfg.model_dump(mode="json"), RESUMABLE_CHANGES, dataset=dataset_hash)


def open_study(cfg: TuneConfig, root: Path, study_name: str, dataset_hash: str) -> SharedStudy:
    """A new study, or the one stored under `root` (resume); interrupted trials failed, their folders removed, and
    their points queued again."""
    paths = TunePaths(root)
    spec = StudySpec(name=study_name, label="tuning study", storage="memory" if cfg.storage == "memory" else "sqlite",
                     path=None if cfg.storage == "memory" else paths.study, fingerprint=fingerprint(cfg, dataset_hash),
                     resumable=RESUMABLE_CHANGES, resume=cfg.resume, name_meaning="this dataset and seed's",
                     keep_on_redo=("warm_from",))
    # its random start resumable: a study resumed inside it goes on with new draws, not its first ones again
    sampler = tpe_sampler(cfg.seed, min(5, max(1, cfg.n_trials // 3)))
    return open_shared_study(spec, sampler, cfg.make_pruner(),
                             on_replace=lambda: shutil.rmtree(paths.trial_folders, ignore_errors=True),
                             on_interrupted=lambda number: shutil.rmtree(paths.trial(number), ignore_errors=True))


def counts(trial: FrozenTrial) -> bool:
    """A finished trial (complete, pruned, or failed by an error; not one that was interrupted)."""
    return counted(trial, ROLE)


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
