"""The study loop: resumable storage with intact numbering, failing trials, executors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nas_helpers import TOY_SPACE, toy_task

from ganaug.classifier import ArchSpec
from ganaug.errors import ConfigError
from ganaug.nas.config import SearchConfig
from ganaug.nas.evaluator import TrialResult
from ganaug.nas.results import study_rows
from ganaug.nas.space import SearchSpace
from ganaug.nas.study import open_study, run_search_trials


def toy_cfg(**overrides: object) -> SearchConfig:
    values: dict[str, object] = {"n_trials": 6, "population_size": 3, "tournament_size": 2, "space": TOY_SPACE}
    values.update(overrides)
    return SearchConfig(**values)


def run(cfg: SearchConfig, folder: Path | None, task=toy_task, executor=None, fingerprint: str = "toy"):
    space = SearchSpace(cfg.space, 8, 8)
    study = open_study(cfg, space, folder, fingerprint)
    run_search_trials(study, space, task, cfg.n_trials, cfg.parallel, executor)
    return study


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_resume_continues_numbering_and_keeps_finished_trials(tmp_path: Path, storage: str) -> None:
    first = run(toy_cfg(n_trials=4, storage=storage), tmp_path)
    before = [(t.number, t.params) for t in first.trials]
    resumed = run(toy_cfg(n_trials=7, storage=storage), tmp_path)
    assert [t.number for t in resumed.trials] == list(range(7))
    assert [(t.number, t.params) for t in resumed.trials[:4]] == before
    # a resumed run proposes what an uninterrupted one would have
    uninterrupted = run(toy_cfg(n_trials=7, storage="memory"), None)
    assert [t.params for t in resumed.trials] == [t.params for t in uninterrupted.trials]


@pytest.mark.parametrize("strategy", ["random", "evolution", "tpe", "nsga2", "gan"])
def test_resume_inside_the_random_draws_proposes_what_an_uninterrupted_run_would(tmp_path: Path, strategy: str) -> None:
    # 2 trials, then resumed to 7: the random start (population_size 3) is cut in the middle
    run(toy_cfg(n_trials=2, storage="journal", strategy=strategy), tmp_path)
    resumed = run(toy_cfg(n_trials=7, storage="journal", strategy=strategy), tmp_path)
    uninterrupted = run(toy_cfg(n_trials=7, storage="memory", strategy=strategy), None)
    assert [t.params for t in resumed.trials] == [t.params for t in uninterrupted.trials]
    assert len({tuple(sorted(t.params.items())) for t in resumed.trials[:3]}) == 3  # no draw repeated after the resume


class Interrupt(BaseException):
    """Stands in for Ctrl-C / a killed worker: not an `Exception`, so the loop does not swallow it."""


def test_interrupted_trial_is_recorded_failed_and_redone_on_resume(tmp_path: Path) -> None:
    def interrupting(arch: ArchSpec, prune: object = None, augment: float = 0.0) -> TrialResult:
        calls.append(arch)
        if len(calls) == 3:
            raise Interrupt()
        return toy_task(arch)

    calls: list[ArchSpec] = []
    with pytest.raises(Interrupt):
        run(toy_cfg(n_trials=5, storage="journal"), tmp_path, interrupting)
    study = run(toy_cfg(n_trials=5, storage="journal"), tmp_path)
    rows = study_rows(study, "evolution")
    assert [r["number"] for r in rows] == list(range(6))
    assert rows[2]["state"] == "failed" and "interrupted" in rows[2]["error"]
    assert sum(r["state"] == "complete" for r in rows) == 5  # the budget is still 5 finished trials
    # the interrupted point is queued again and redone first, with its lineage (the same rule as GAN tuning)
    assert study.trials[3].params == study.trials[2].params
    assert rows[3]["generation"] == rows[2]["generation"] and rows[3]["parents"] == rows[2]["parents"]


def test_a_raising_trial_is_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    def flaky(arch: ArchSpec, prune: object = None, augment: float = 0.0) -> TrialResult:
        calls.append(arch)
        if len(calls) == 2:
            raise RuntimeError("out of memory in this candidate")
        return toy_task(arch)

    calls: list[ArchSpec] = []
    study = run(toy_cfg(n_trials=5, storage="journal"), tmp_path, flaky)
    rows = study_rows(study, "evolution")
    assert [r["state"] for r in rows] == ["complete", "failed", "complete", "complete", "complete"]
    assert rows[1]["error"] == "RuntimeError: out of memory in this candidate"
    assert len(calls) == 5
    # the failure counts toward the budget: resuming with the same budget adds nothing
    assert len(run(toy_cfg(n_trials=5, storage="journal"), tmp_path).trials) == 5


def test_resuming_with_another_config_is_refused(tmp_path: Path) -> None:
    run(toy_cfg(n_trials=2, storage="journal"), tmp_path)
    with pytest.raises(ConfigError, match=r"study.journal was run with other data; only .* may change"):
        run(toy_cfg(n_trials=2, storage="journal"), tmp_path, fingerprint="other data")
    fresh = run(toy_cfg(n_trials=2, storage="journal", resume=False), tmp_path, fingerprint="other data")
    assert len(fresh.trials) == 2


def test_executor_batches_give_the_same_trials_as_sequential_batches() -> None:
    sequential = run(toy_cfg(n_trials=9, parallel=3, storage="memory"), None)
    with ThreadPoolExecutor(3) as pool:
        parallel = run(toy_cfg(n_trials=9, parallel=3, storage="memory"), None, executor=pool)
    assert [(t.number, t.params, t.values) for t in parallel.trials] == [
        (t.number, t.params, t.values) for t in sequential.trials
    ]
