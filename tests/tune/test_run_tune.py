"""Tuning as a stage: `run_tune` records run.json like the other stages and reuses a fresh tuning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tunehelpers import TINY_GAN, make_dataset
from typer.testing import CliRunner

import ganaug.tune.study as study_module
from ganaug.cli import app
from ganaug.errors import ConfigError
from ganaug.runner import DOWNSTREAM_OF_INGEST, run_tune, table_results_hash
from ganaug.runs import RunFolder, TunePaths
from ganaug.store import file_hash
from ganaug.tune.config import TuneConfig
from ganaug.tune.history import history_rows

TINY_TUNE: dict[str, Any] = {"min_steps": 2, "max_steps": 8, "reduction_factor": 2, "synthetic_per_class": 8,
                             "classifier_steps": 20, "base": TINY_GAN, "seed": 3, "pruner": "none", "warm_start": False}


def cfg_of(tmp_path: Path, **changes: Any) -> TuneConfig:
    return TuneConfig.model_validate({**TINY_TUNE, "history": str(tmp_path / "history.parquet"), **changes})


def no_training(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a fresh tuning was run again")


def test_run_tune_records_its_inputs_outputs_and_result(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "run" / "dataset.parquet")
    run = RunFolder.open(tmp_path / "run")
    result = run_tune(run, cfg_of(tmp_path, n_trials=2), dataset)
    entry = run.read_manifest()["stages"]["tune"]
    assert entry["status"] == "completed"
    assert entry["inputs"]["dataset"]["content_hash"] == dataset.content_hash
    trials = entry["outputs"]["trials"]
    assert trials["path"] == str(TunePaths.under(run.root).trials) and trials["rows"] == 2
    assert trials["content_hash"] == file_hash(trials["path"])
    assert trials["results_hash"] == table_results_hash(trials["path"])  # without seconds and finished_after
    assert entry["outputs"]["best_gan"]["path"] == result.best_config_path
    assert entry["notes"]["result"] == json.loads(result.model_dump_json())
    assert run.read_manifest()["config"]["tune"]["n_trials"] == 2


def test_a_rerun_with_the_same_inputs_reuses_the_finished_tuning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path / "run" / "dataset.parquet")
    run = RunFolder.open(tmp_path / "run")
    first = run_tune(run, cfg_of(tmp_path, n_trials=1), dataset)
    told: list[str] = []
    monkeypatch.setattr(study_module, "train_gan", no_training)
    again = run_tune(run, cfg_of(tmp_path, n_trials=1, parallel=1), dataset, announce=told.append)
    assert again == first and "is fresh" in told[0]
    assert len(history_rows(tmp_path / "history.parquet")) == 1  # nothing trained, nothing recorded twice
    # another budget is another config: the stored study is resumed to it
    monkeypatch.undo()
    more = run_tune(run, cfg_of(tmp_path, n_trials=2), dataset)
    assert more.resumed_trials == 1 and more.trials == 2


def test_changed_outputs_or_resume_false_run_the_tuning_again(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "run" / "dataset.parquet")
    run = RunFolder.open(tmp_path / "run")
    first = run_tune(run, cfg_of(tmp_path, n_trials=1), dataset)
    Path(first.best_config_path).write_text("edited by hand\n")
    again = run_tune(run, cfg_of(tmp_path, n_trials=1), dataset)  # not fresh: its output changed; the study is resumed
    assert again.resumed_trials == 1 and Path(again.best_config_path).read_text() != "edited by hand\n"
    replaced = run_tune(run, cfg_of(tmp_path, n_trials=1, resume=False), dataset)
    assert replaced.resumed_trials == 0
    assert len(history_rows(tmp_path / "history.parquet")) == 2  # the first trial, and the replaced study's


def test_reingesting_another_dataset_makes_the_tuning_stale(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "run" / "dataset.parquet")
    run = RunFolder.open(tmp_path / "run")
    run_tune(run, cfg_of(tmp_path, n_trials=1), dataset)
    other = make_dataset(tmp_path / "other" / "dataset.parquet", seed=9)
    assert run.invalidate(DOWNSTREAM_OF_INGEST, "dataset ingested again") == ["tune"]
    assert run.read_manifest()["stages"]["tune"]["status"] == "stale"
    with pytest.raises(ConfigError, match="is not this dataset and seed's"):  # not fresh, and the stored study is not its
        run_tune(run, cfg_of(tmp_path, n_trials=1), other)


def test_cli_tune_goes_through_the_runner(tmp_path: Path) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    config = tmp_path / "tune.yaml"
    config.write_text(json.dumps({**TINY_TUNE, "n_trials": 1}))
    command = ["tune", "--runs-root", str(tmp_path / "runs"), "-c", str(config), "--history", str(tmp_path / "h.parquet")]
    assert CliRunner().invoke(app, command).exit_code == 0
    assert RunFolder.open(tmp_path / "runs" / "r1").read_manifest()["stages"]["tune"]["status"] == "completed"
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "is fresh (same dataset and config); reusing it" in " ".join(again.output.split())
    assert len(history_rows(tmp_path / "h.parquet")) == 1
