"""The study loop shared by the architecture search and GAN tuning: pruning through the study's storage, resume."""

from __future__ import annotations

import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest

from ganaug.errors import ConfigError, DataError
from ganaug.pruning import TrialPruning
from ganaug.samplers import RANDOM_DRAW_ATTR, ResumableRandomSampler
from ganaug.study import Outcome, SharedStudy, StudySpec, TrialWork, ask, open_study, run_trials


def spec(folder: Path | None, **changes: Any) -> StudySpec:
    values: dict[str, Any] = {"name": "toy", "label": "toy study", "storage": "journal" if folder else "memory",
                              "path": folder / "toy.journal" if folder else None, "fingerprint": '{"config": {}}',
                              "resumable": frozenset({"n_trials"})}
    return StudySpec(**{**values, **changes})


def toy_study(folder: Path | None = None, seed: int = 0) -> SharedStudy:
    return open_study(spec(folder), ResumableRandomSampler(seed),
                      optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))


def toy_task(x: float, pruning: TrialPruning | None, jitter: float) -> list[tuple[int, float]]:
    """Three readings that grow towards x; sleeps a little first so threads finish in a mixed order."""
    time.sleep(jitter)
    report = pruning.reporter("step", "value") if pruning is not None else None
    readings = []
    for step in (1, 2, 3):
        readings.append((step, x * step / 3))
        if report is not None:
            try:
                report(step, x * step / 3)
            except optuna.TrialPruned:
                return readings
        time.sleep(jitter / 3)
    return readings


def toy_outcome(trial: optuna.Trial, x: float, result: Any) -> Outcome:
    if isinstance(result, Exception):
        return Outcome.failed(result, f"toy trial {trial.number}")
    if len(result) < 3:
        return Outcome("pruned", readings=result)
    return Outcome("complete", [result[-1][1]], readings=result)


def toy_work(jitters: random.Random) -> TrialWork:
    return TrialWork(role="toy", name="toy_trial", draw=lambda trial: trial.suggest_float("x", 0.0, 1.0), task=toy_task,
                     args=lambda trial, x, pruning: (x, pruning, jitters.random() * 0.02), outcome=toy_outcome,
                     label=lambda trial, x: f"toy_trial {trial.number}")


def states(study: optuna.Study) -> list[tuple[int, str, dict[int, float]]]:
    return [(t.number, t.state.name, t.intermediate_values) for t in study.trials]


def test_pruned_batches_are_the_same_with_any_executor_and_finishing_order() -> None:
    serial = toy_study()
    run_trials(serial, toy_work(random.Random(0)), n_trials=12, parallel=4)
    with ThreadPoolExecutor(4) as pool:
        threaded = toy_study()
        run_trials(threaded, toy_work(random.Random(1)), n_trials=12, parallel=4, executor=pool)
    assert states(threaded) == states(serial)
    assert {state for _, state, _ in states(serial)} == {"COMPLETE", "PRUNED"}
    # a pruned trial's readings were reported by its worker, into its own trial
    assert all(len(values) < 3 for _, state, values in states(serial) if state == "PRUNED")


def test_a_worker_in_another_process_reopens_the_study_file(tmp_path: Path) -> None:
    study = toy_study(tmp_path / "here")
    run_trials(study, toy_work(random.Random(0)), n_trials=2)
    trial = study.ask()
    moved = tmp_path / "there" / "toy.journal"  # a path this process never opened: the worker reads the file
    moved.parent.mkdir()
    shutil.copy(study.spec.path, moved)
    handle = study.pruning(trial.number, before=trial.number)
    assert handle is not None
    elsewhere = handle.model_copy(update={"storage_path": str(moved)})
    elsewhere.reporter("step", "value")(1, 0.5)
    stored = optuna.load_study(study_name="toy", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(moved))))
    assert stored.trials[trial.number].intermediate_values == {1: 0.5}
    assert study.trials[trial.number].intermediate_values == {}  # the original file is untouched


def test_a_study_in_memory_cannot_reach_workers_in_other_processes(tmp_path: Path) -> None:
    study = toy_study()
    trial = study.ask()
    handle = study.pruning(trial.number, before=0)
    assert handle is not None
    gone = handle.model_copy(update={"storage_path": "memory:another-process"})
    with pytest.raises(ConfigError, match="storage 'memory' keeps the study inside the process"):
        gone.reporter("step", "value")
    on_file = toy_study(tmp_path).pruning(0, before=0)
    assert on_file is not None
    unreachable = on_file.model_copy(update={"storage_path": str(tmp_path / "elsewhere" / "toy.journal")})
    with pytest.raises(ConfigError, match=r"elsewhere/toy\.journal cannot be reached from this worker"):
        unreachable.reporter("step", "value")


def test_draws_recorded_before_this_loop_still_resume(tmp_path: Path) -> None:
    """Studies stored before the loop recorded random draws as user attributes kept them as system attributes."""
    whole = open_study(spec(None), ResumableRandomSampler(3), optuna.pruners.NopPruner())
    for _ in range(3):
        trial, _ = ask(whole, lambda t: (t.suggest_float("x", 0.0, 1.0), t.suggest_int("k", 1, 9)), "toy")
        whole.tell(trial, 0.5)
    old = open_study(spec(None), ResumableRandomSampler(3), optuna.pruners.NopPruner())
    for stored in whole.trials[:2]:
        old.add_trial(optuna.trial.create_trial(params=stored.params, distributions=stored.distributions, value=0.5,
                                                system_attrs={RANDOM_DRAW_ATTR: stored.user_attrs[RANDOM_DRAW_ATTR]}))
    trial, _ = ask(old, lambda t: (t.suggest_float("x", 0.0, 1.0), t.suggest_int("k", 1, 9)), "toy")
    assert trial.params == whole.trials[2].params


def test_a_damaged_study_file_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "toy.journal"
    path.write_text("this is not an optuna journal\n")
    with pytest.raises(DataError, match=r"cannot open the toy study stored at .*toy\.journal: .*set resume=false") as raised:
        open_study(spec(tmp_path), ResumableRandomSampler(0), optuna.pruners.NopPruner())
    assert "\n" not in str(raised.value)
    assert path.read_text() == "this is not an optuna journal\n"  # nothing replaced without resume=false


def test_resume_false_replaces_and_another_fingerprint_is_refused(tmp_path: Path) -> None:
    study = toy_study(tmp_path)
    run_trials(study, toy_work(random.Random(0)), n_trials=2)
    replaced: list[bool] = []
    other = spec(tmp_path, fingerprint='{"config": {"lr": 2}}')
    with pytest.raises(ConfigError, match=r"toy\.journal was run with other options \(lr\); only n_trials may change"):
        open_study(other, ResumableRandomSampler(0), optuna.pruners.NopPruner())
    fresh = open_study(spec(tmp_path, fingerprint='{"config": {"lr": 2}}', resume=False), ResumableRandomSampler(0),
                       optuna.pruners.NopPruner(), on_replace=lambda: replaced.append(True))
    assert fresh.trials == [] and replaced == [True]


def test_a_pruning_handles_cache_key_leaves_out_where_the_study_lies(tmp_path: Path) -> None:
    """A trial's cache key (the flows' `stage_key`) holds what the pruner judges by, not the study file's location,
    so the same search in another run folder hits the cache."""
    from ganaug.cache import stage_key

    studies = [toy_study(tmp_path / name) for name in ("a", "b")]
    for study in studies:
        run_trials(study, toy_work(random.Random(0)), n_trials=2)
        study.ask()
    here, there = (study.pruning(2, before=2) for study in studies)
    assert here is not None and there is not None and here.storage_path != there.storage_path
    assert stage_key("toy_trial", {"item": here}) == stage_key("toy_trial", {"item": there})
    assert stage_key("toy_trial", {"item": here}) != stage_key("toy_trial", {"item": studies[0].pruning(2, before=1)})
