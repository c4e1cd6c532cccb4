"""Hyperband next to successive halving: a trial's worker, through the study's storage, judges it as the study itself would."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from tunehelpers import TINY_GAN, make_dataset

from ganaug.study import SharedStudy, StudySpec, open_study
from ganaug.tune.config import TuneConfig
from ganaug.tune.study import judge_from, tune_gan

TINY_TUNE: dict[str, Any] = {"min_steps": 2, "max_steps": 8, "reduction_factor": 2, "synthetic_per_class": 8,
                             "classifier_steps": 20, "base": TINY_GAN, "storage": "memory"}


def shared_study(cfg: TuneConfig, name: str) -> SharedStudy:
    spec = StudySpec(name=name, label="tuning study", storage="memory", path=None, fingerprint="{}", resumable=frozenset())
    return open_study(spec, optuna.samplers.RandomSampler(0), cfg.make_pruner())


def worker_decision(study: SharedStudy, readings: list[tuple[int, float]], judged_from: int = 0) -> tuple[int, int | None]:
    """Ask a trial and let its worker (a `TrialPruning` on the study's storage) report the readings, then tell it:
    (its number, the step it is stopped at; None = never)."""
    trial = study.ask()
    report = study.pruning(trial.number, before=trial.number, judge_from=judged_from).reporter("step", "CAS on val")
    for step, utility in readings:
        try:
            report(step, utility)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return trial.number, step
    study.tell(trial, readings[-1][1])
    return trial.number, None


def study_decision(study: optuna.Study, readings: list[tuple[int, float]]) -> tuple[int, int | None]:
    """Ask a trial in the study itself and report the readings: (its number, the step it is stopped at)."""
    trial = study.ask()
    for step, utility in readings:
        trial.report(utility, step)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return trial.number, step
    study.tell(trial, readings[-1][1])
    return trial.number, None


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_a_workers_pruning_decision_is_the_studys_own(pruner: str) -> None:
    """Hyperband's bracket hangs on the study's name and the trial's number: the worker's study keeps both."""
    cfg = TuneConfig.model_validate({**TINY_TUNE, "pruner": pruner})
    study = optuna.create_study(direction="maximize", pruner=cfg.make_pruner(), study_name="tune-abc-seed0")
    shared = shared_study(cfg, "tune-abc-seed0")
    rng = random.Random(0)
    decisions = []
    for number in range(40):
        if number % 7 == 3:  # a failed trial leaves a gap in the numbers of the finished ones
            study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
            shared.tell(shared.ask(), state=optuna.trial.TrialState.FAIL)
            continue
        readings = [(step, rng.random()) for step in (2, 4, 8)]
        asked, stopped = study_decision(study, readings)
        assert worker_decision(shared, readings) == (asked, stopped) == (number, stopped), f"trial {number}"
        decisions.append(stopped)
    assert any(d == 2 for d in decisions) and any(d is None for d in decisions)
    if pruner == "hyperband":  # some brackets start pruning only at the second rung
        assert any(d == 4 for d in decisions)
    # the readings are the study's own: every worker reported them into its trial
    assert [t.intermediate_values for t in shared.trials] == [t.intermediate_values for t in study.trials]


@pytest.mark.parametrize("pruner", ["hyperband", "successive_halving"])
def test_a_warm_trial_spared_its_first_rung_is_judged_from_the_second(pruner: str) -> None:
    cfg = TuneConfig.model_validate({**TINY_TUNE, "pruner": pruner, "warm_unpruned_rungs": 1})
    judged, spared = shared_study(cfg, "tune-abc-seed0"), shared_study(cfg, "tune-abc-seed0")
    rng = random.Random(1)
    stopped_first = stopped_second = 0
    for number in range(40):
        readings = [(step, rng.random()) for step in (2, 4, 8)]
        stopped_first += worker_decision(judged, readings)[1] == 2
        _, stopped = worker_decision(spared, readings, judged_from=4)
        assert stopped != 2, f"trial {number}"  # its first reading never stops it
        stopped_second += stopped == 4
    assert stopped_first and stopped_second, "no trial stopped at the first rung, or none spared there stopped at the second"


def test_only_warm_start_trials_are_spared_and_only_as_many_rungs_as_asked() -> None:
    def first_judged_step(warm: bool, rungs: int | str) -> int:
        cfg = TuneConfig.model_validate({**TINY_TUNE, "warm_unpruned_rungs": rungs})
        study = optuna.create_study(direction="maximize")
        study.enqueue_trial({}, user_attrs={"warm_from": "past/dataset.parquet"} if warm else None)
        return judge_from(study.ask(), cfg)

    assert first_judged_step(warm=True, rungs=1) == 4  # rungs 2 -> 4 -> 8
    assert first_judged_step(warm=True, rungs=2) == 8  # the last rung: never pruned
    assert first_judged_step(warm=True, rungs=5) == 8
    assert first_judged_step(warm=True, rungs=0) == first_judged_step(warm=False, rungs=1) == 0
    assert first_judged_step(warm=True, rungs="all") == 8 and first_judged_step(warm=False, rungs="all") == 0
    assert TuneConfig.model_validate(TINY_TUNE).warm_unpruned_rungs == 0  # the default: judged like any trial
    with pytest.raises(ValidationError, match="warm_unpruned_rungs"):
        TuneConfig.model_validate({**TINY_TUNE, "warm_unpruned_rungs": "some"})


def test_hyperband_has_one_bracket_per_rung() -> None:
    cfg = TuneConfig.model_validate({**TINY_TUNE, "pruner": "hyperband"})
    pruner = cfg.make_pruner()
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    study = optuna.create_study(direction="maximize", pruner=pruner, study_name="s")
    trial = study.ask()
    trial.report(0.5, 2)
    trial.should_prune()  # initialises the brackets
    assert pruner._n_brackets == len(cfg.rungs()) == 3


def test_hyperband_study_with_threads_is_deterministic_and_prunes_at_its_rungs(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    outcomes = []
    for attempt in range(2):
        cfg = TuneConfig.model_validate({**TINY_TUNE, "n_trials": 8, "parallel": 2, "seed": 5, "pruner": "hyperband",
                                         "history": str(tmp_path / f"h{attempt}.parquet")})
        with ThreadPoolExecutor(2) as pool:
            result = tune_gan(ref, cfg, tmp_path / f"out{attempt}", executor=pool)
        outcomes.append(pq.read_table(result.trials_path).select(["number", "state", "params", "rung_utility"]).to_pylist())
    assert outcomes[0] == outcomes[1]
    states = [t["state"] for t in outcomes[0]]
    assert "pruned" in states and "complete" in states
    for trial in outcomes[0]:
        assert len(trial["rung_utility"]) == (3 if trial["state"] == "complete" else len(trial["rung_utility"]))
        if trial["state"] == "pruned":
            assert len(trial["rung_utility"]) < 3  # stopped at a rung before the last


def test_unknown_pruner_is_refused() -> None:
    with pytest.raises(ValueError, match="pruner"):
        TuneConfig.model_validate({**TINY_TUNE, "pruner": "median"})
