"""`ganaug search`: leaderboard and paths printed, run.json updated, one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nas_helpers import write_tiny_dataset, write_tiny_synthetic
from typer.testing import CliRunner

from ganaug.cli import app

runner = CliRunner()
TINY = """
n_trials: 3
steps: 10
final_steps: 10
population_size: 2
tournament_size: 2
batch_size: 32
space:
  max_blocks: 2
  channels: [4, 8]
  head_widths: [0, 16]
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "runs" / "r1"
    folder.mkdir(parents=True)
    write_tiny_dataset(folder)
    write_tiny_synthetic(folder)
    (tmp_path / "search.yaml").write_text(TINY)
    return folder


def test_search_prints_leaderboard_and_records_the_stage(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--run-dir", str(run_dir), "-c", str(tmp_path / "search.yaml"),
                                 "--strategy", "random", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "random search: 3 trials" in result.output and "val acc" in result.output
    for name in ("trials.parquet", "best.json", "report.md", "fitness.png", "pareto.png"):
        assert (run_dir / "nas" / name).is_file() and name in result.output
    manifest = json.loads((run_dir / "run.json").read_text())
    stage = manifest["stages"]["search"]
    assert stage["status"] == "completed" and stage["inputs"]["synthetic"]["path"].endswith("synthetic.parquet")
    assert manifest["config"]["search"]["strategy"] == "random" and manifest["config"]["search"]["seed"] == 1


def test_gan_strategy_searches_the_wide_space(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--run-dir", str(run_dir), "-c", str(tmp_path / "search.yaml"), "--strategy", "gan",
                                 "--space", "wide", "--gan-top-k", "2", "--gan-retrain-every", "1", "--storage", "memory"])
    assert result.exit_code == 0, result.output
    assert "gan search: 3 trials" in result.output
    manifest = json.loads((run_dir / "run.json").read_text())
    search = manifest["config"]["search"]
    assert search["strategy"] == "gan" and search["gan_top_k"] == 2 and search["space"]["max_blocks"] == 6


def test_default_run_dir_is_the_newest_with_a_dataset(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "runs" / "r0-empty").mkdir()
    result = runner.invoke(app, ["search", "-c", "search.yaml", "--trials", "2", "--storage", "memory"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "nas" / "best.json").is_file()


def test_parallel_trials_run_at_once(run_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--run-dir", str(run_dir), "-c", str(tmp_path / "search.yaml"),
                                 "--parallel", "2", "--trials", "2", "--storage", "memory"])
    assert result.exit_code == 0, result.output
    assert "2 trials (2 complete" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "n_trials"),
        (["--strategy", "hillclimb"], "strategy"),
        (["--strategy", "gan", "--gan-top-k", "0"], "gan_top_k"),
        (["--strategy", "gan", "--gan-retrain-every", "0"], "gan_retrain_every"),
        (["--space", "huge"], "space preset must be one of default, wide"),
        (["--proxy", "auto"], "proxy 'auto' needs correlation_sample"),
        (["--proxy", "jacob"], "proxy"),
        (["--synthetic", "missing.parquet"], "--synthetic missing.parquet does not exist"),
    ],
)
def test_bad_options_exit_2_with_one_line_and_write_nothing(run_dir: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["search", "--run-dir", str(run_dir), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (run_dir / "nas").exists() and not (run_dir / "run.json").exists()


def test_no_run_folder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search"])
    assert result.exit_code == 2 and "no run folder under data/runs holds dataset.parquet; run `ganaug ingest` first" in result.output
