"""Resuming a tuning study stored in <run>/tune/study.db."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from tunehelpers import TINY_GAN, make_dataset
from typer.testing import CliRunner

import ganaug.tune.study as study_module
from ganaug.cli import app
from ganaug.errors import ConfigError
from ganaug.tune.config import TuneConfig
from ganaug.tune.history import history_rows
from ganaug.tune.study import tune_gan

TINY_TUNE: dict[str, Any] = {"min_steps": 2, "max_steps": 8, "reduction_factor": 2, "synthetic_per_class": 8,
                             "classifier_steps": 20, "base": TINY_GAN, "seed": 3}
COLUMNS = ["number", "state", "params", "rung_steps", "rung_utility", "utility"]


def cfg_of(tmp_path: Path, **changes: Any) -> TuneConfig:
    return TuneConfig.model_validate({**TINY_TUNE, "history": str(tmp_path / "history.parquet"), **changes})


def trials(result: Any) -> list[dict[str, Any]]:
    return pq.read_table(result.trials_path).select(COLUMNS).to_pylist()


def test_resume_continues_the_stored_study_to_the_new_budget(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    first = tune_gan(ref, cfg_of(tmp_path, n_trials=3, resume=False), tmp_path / "run")
    assert (tmp_path / "run" / "tune" / "study.db").is_file() and first.resumed_trials == 0
    first_rows = trials(first)
    more = tune_gan(ref, cfg_of(tmp_path, n_trials=5, resume=True, parallel=2), tmp_path / "run")
    assert more.resumed_trials == 3 and more.trials == 5
    rows = trials(more)
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[:3] == first_rows  # the stored trials, as they were
    assert len({r["params"] for r in rows}) == 5  # new points, not repeats
    assert len(history_rows(tmp_path / "history.parquet")) == 5  # one record per trial, none twice
    again = tune_gan(ref, cfg_of(tmp_path, n_trials=5, resume=True), tmp_path / "run")
    assert again.resumed_trials == 5 and trials(again) == rows  # nothing left to do
    assert len(history_rows(tmp_path / "history.parquet")) == 5


def test_an_interrupted_trial_is_redone_with_its_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    real_train = study_module.train_gan
    calls: list[int] = []

    def interrupted_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            (Path(args[2]) / "gan").mkdir(parents=True)  # what a training had written so far
            raise KeyboardInterrupt  # Ctrl-C in the middle of trial 1
        return real_train(*args, **kwargs)

    monkeypatch.setattr(study_module, "train_gan", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        tune_gan(ref, cfg_of(tmp_path, n_trials=3), tmp_path / "run")
    monkeypatch.setattr(study_module, "train_gan", real_train)
    assert (tmp_path / "run" / "tune" / "trials" / "0001").is_dir()
    import optuna

    stored = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'run' / 'tune' / 'study.db'}")
    interrupted_point = stored.trials[1].params
    result = tune_gan(ref, cfg_of(tmp_path, n_trials=3, resume=True), tmp_path / "run")
    rows = trials(result)
    assert result.resumed_trials == 1 and [r["number"] for r in rows] == [0, 2, 3]  # trial 1 was interrupted
    assert json.loads(rows[1]["params"]) == pytest.approx(interrupted_point)  # redone first
    assert all(r["state"] != "failed" for r in rows)
    assert not (tmp_path / "run" / "tune" / "trials" / "0001").exists()  # the interrupted trial's folder is gone
    assert [r["trial"] for r in history_rows(tmp_path / "history.parquet")] == [0, 2, 3]


@pytest.mark.parametrize(("changes", "message"), [
    ({"classifier_steps": 21}, r"other options \(classifier_steps\)"),
    ({"reduction_factor": 4, "max_steps": 32}, r"other options \(max_steps, reduction_factor\)"),
    ({"seed": 4}, "is not this dataset and seed's"),
])
def test_resume_with_other_options_is_refused_and_changes_nothing(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    tune_gan(ref, cfg_of(tmp_path, n_trials=2, pruner="none"), tmp_path / "run")
    stored = tmp_path / "run" / "tune" / "study.db"
    before = stored.read_bytes()
    with pytest.raises(ConfigError, match=message) as raised:
        tune_gan(ref, cfg_of(tmp_path, n_trials=3, pruner="none", resume=True, **changes), tmp_path / "run")
    assert str(stored) in str(raised.value)
    assert stored.read_bytes() == before
    assert len(history_rows(tmp_path / "history.parquet")) == 2


def test_resume_of_another_dataset_is_refused(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    tune_gan(ref, cfg_of(tmp_path, n_trials=1, pruner="none"), tmp_path / "run")
    other = make_dataset(tmp_path / "other.parquet", seed=9)
    with pytest.raises(ConfigError, match="is not this dataset and seed's"):
        tune_gan(other, cfg_of(tmp_path, n_trials=2, pruner="none", resume=True), tmp_path / "run")


def test_without_resume_a_stored_study_is_replaced(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    first = trials(tune_gan(ref, cfg_of(tmp_path, n_trials=2, pruner="none", warm_start=False), tmp_path / "run"))
    second = tune_gan(ref, cfg_of(tmp_path, n_trials=2, pruner="none", warm_start=False, resume=False), tmp_path / "run")
    assert second.resumed_trials == 0 and trials(second) == first  # same seed, a fresh study


def test_resume_is_the_default_and_starts_a_study_when_none_is_stored(tmp_path: Path) -> None:
    """One rule with the architecture search: resume reopens a stored study and starts one when there is none."""
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    assert cfg_of(tmp_path).resume is True
    first = tune_gan(ref, cfg_of(tmp_path, n_trials=1, pruner="none"), tmp_path / "run")
    assert first.resumed_trials == 0 and (tmp_path / "run" / "tune" / "study.db").is_file()
    again = tune_gan(ref, cfg_of(tmp_path, n_trials=1, pruner="none"), tmp_path / "run")
    assert again.resumed_trials == 1 and trials(again) == trials(first)  # the finished study, not a new one
    in_memory = tune_gan(ref, cfg_of(tmp_path, n_trials=1, storage="memory"), tmp_path / "mem")
    assert in_memory.trials == 1 and not (tmp_path / "mem" / "tune" / "study.db").exists()


def test_cli_resume(tmp_path: Path) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    config = tmp_path / "tune.yaml"
    config.write_text(json.dumps({**TINY_TUNE, "pruner": "none"}))
    base = ["tune", "--runs-root", str(tmp_path / "runs"), "-c", str(config), "--history", str(tmp_path / "h.parquet"), "--cold"]
    assert CliRunner().invoke(app, [*base, "--trials", "1"]).exit_code == 0
    resumed = CliRunner().invoke(app, [*base, "--resume", "--trials", "2"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed: 1 trial(s) were done before" in resumed.output
    assert len(history_rows(tmp_path / "h.parquet")) == 2
    replaced = CliRunner().invoke(app, [*base, "--no-resume", "--trials", "1"])
    assert replaced.exit_code == 0, replaced.output
    assert "resumed" not in replaced.output and len(history_rows(tmp_path / "h.parquet")) == 3
    other = CliRunner().invoke(app, [*base, "--trials", "2", "--seed", "9"])
    assert other.exit_code == 2 and "is not this dataset and seed's" in other.output
    assert "study.db" in " ".join(other.output.split()) and "Traceback" not in other.output


def test_a_study_resumed_inside_its_random_start_goes_on_with_new_draws(tmp_path: Path) -> None:
    """Optuna's random sampler restarts its sequence in a new process; the study must not propose its first points again."""
    from ganaug.study import ask
    from ganaug.tune.config import suggest
    from ganaug.tune.storage import open_study

    def asked(root: Path, count: int, resume: bool) -> list[dict[str, Any]]:
        study = open_study(cfg_of(tmp_path, n_trials=9, resume=resume), root, "tune-abc-seed3", "abc")  # 3 random trials
        for _ in range(count):
            trial, _ = ask(study, suggest, "tune")
            study.tell(trial, 0.5)
        return [t.params for t in study.get_trials()]

    uninterrupted = asked(tmp_path / "whole", 3, resume=False)
    asked(tmp_path / "cut", 1, resume=False)
    resumed = asked(tmp_path / "cut", 2, resume=True)
    assert resumed == uninterrupted
    assert len({json.dumps(p, sort_keys=True) for p in resumed}) == 3
