"""bench/tune_workers.py: the same study on threads and on worker processes, timed a/b."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tunehelpers import bench_script, make_dataset


def test_both_ways_find_the_same_trials_and_the_ratio_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    dataset = make_dataset(tmp_path / "dataset.parquet")
    monkeypatch.setattr(sys, "argv", ["tune_workers.py", "--dataset", str(dataset.path), "--trials", "2", "--steps", "2",
                                      "--classifier-steps", "5", "--batch-size", "8", "--rounds", "1", "--out", str(tmp_path / "out")])
    with bench_script("tune_workers") as module:
        module.main()
    report = json.loads((tmp_path / "out" / "tune_workers.json").read_text())
    (round_,) = report["rounds"]
    assert round_["order"] == ["threads", "processes"]
    assert round_["threads"]["best_utility"] == round_["processes"]["best_utility"]
    assert round_["ratio"] == pytest.approx(round_["threads"]["seconds"] / round_["processes"]["seconds"], abs=1e-3)
    assert report["median_ratio"] == round_["ratio"]
    assert "median threads / processes" in capsys.readouterr().out


@pytest.mark.parametrize(("options", "message"), [(["--trials", "0"], "--trials 0: must be at least 1"),
                                                  (["--dataset", "missing.parquet"], "--dataset missing.parquet: no such file")])
def test_bad_options_are_refused_naming_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             options: list[str], message: str) -> None:
    dataset = make_dataset(tmp_path / "dataset.parquet")
    monkeypatch.setattr(sys, "argv", ["tune_workers.py", "--dataset", str(dataset.path), *options, "--out", str(tmp_path / "out")])
    with bench_script("tune_workers") as module, pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
