"""`ganaug train` on a run folder: options, summary, manifest, and errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.gan.checkpoint import read_checkpoint

TINY_YAML = """
batch_size: 8
latent_dim: 8
g_width: 16
d_width: 8
metrics_every: 2
checkpoint_every: 2
grid_every: 2
grid_columns: 2
device: cpu
"""


@pytest.fixture
def run_dir(tmp_path: Path, dataset_factory) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path / "runs" / "r1"
    dataset_factory(folder / "dataset.parquet")
    return folder


def test_train_command_writes_the_gan_folder_and_manifest(run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "gan.yaml"
    config.write_text(TINY_YAML)
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "--config", str(config), "--steps", "4", "--seed", "3"])
    assert result.exit_code == 0, result.output
    last = run_dir / "gan" / "checkpoints" / "last.pt"
    assert "GAN training" in result.output and "samples_final.png" in result.output
    payload = read_checkpoint(last)
    assert payload["step"] == 4 and payload["config"]["seed"] == 3 and payload["config"]["g_width"] == 16
    manifest = json.loads((run_dir / "run.json").read_text())
    stage = manifest["stages"]["train_gan"]
    assert stage["status"] == "completed" and stage["outputs"]["checkpoint"]["path"] == str(last)
    assert stage["notes"]["result"]["steps"] == 4

    resumed = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "-c", str(config), "--steps", "6", "--seed", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at 4" in resumed.output and read_checkpoint(last)["step"] == 6


def test_train_command_finds_the_newest_run_folder(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gan.yaml"
    config.write_text(TINY_YAML)
    result = CliRunner().invoke(app, ["train", "-c", str(config), "--steps", "2", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert (run_dir / "gan" / "samples_final.png").is_file()


def test_train_command_without_a_dataset_says_what_to_run(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["train", "--run-dir", str(empty), "--steps", "2"])
    assert result.exit_code == 2
    assert "has no dataset.parquet" in result.output and "ganaug ingest" in result.output
    assert sorted(p.name for p in empty.iterdir()) == []
    result = CliRunner().invoke(app, ["train", "--runs-root", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "pass --run-dir" in result.output


def test_train_command_rejects_bad_options_before_writing(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "--steps", "0"])
    assert result.exit_code == 2 and "steps" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("stepz: 3\n")
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "-c", str(bad)])
    assert result.exit_code == 2 and "stepz: unknown option" in result.output
    assert not (run_dir / "gan").exists() and not (run_dir / "run.json").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--monitor-every", "0"], "monitor_every"),
    (["--g-width", "4"], "g_width"),
    (["--ema-statistics", "averaged"], "ema_statistics"),
])
def test_train_command_rejects_bad_new_options_with_exit_2(run_dir: Path, options: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), *options])
    assert result.exit_code == 2 and message in result.output
    assert not (run_dir / "gan").exists()


def test_train_command_shows_the_monitor_and_the_best_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "gan.yaml"
    config.write_text(TINY_YAML + "monitor_every: 2\n")
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "--config", str(config), "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "best checkpoint" in result.output and "best.pt" in result.output and "val_nn_cas" in result.output
    stage = json.loads((run_dir / "run.json").read_text())["stages"]["train_gan"]
    assert stage["notes"]["result"]["best_step"] in (2, 4)


def test_capture_graph_reaches_the_gan_config_and_trains_on_cpu(run_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "gan.yaml"
    config.write_text(TINY_YAML)
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "-c", str(config), "--steps", "2", "--capture", "graph"])
    assert result.exit_code == 0, result.output
    assert read_checkpoint(run_dir / "gan" / "checkpoints" / "last.pt")["config"]["compile"] == "graph"


@pytest.mark.parametrize(("options", "message"), [
    (["--capture", "graph", "--no-compile"], "--capture and --compile/--no-compile both set"),
    (["--capture", "always"], "--capture must be graph or auto, not 'always'"),
])
def test_bad_capture_options_are_one_line_and_exit_2(run_dir: Path, tmp_path: Path, options: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", "--run-dir", str(run_dir), "--steps", "2", *options])
    assert result.exit_code == 2 and message in result.output
    assert not (run_dir / "gan").exists()
