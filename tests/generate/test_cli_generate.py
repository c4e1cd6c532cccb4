"""`ganaug generate`: the per-class table, the run folder, errors naming the missing stage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.generate import checkpoint_choice
from ganaug.store import SYNTHETIC_SCHEMA, read_dataset

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that table cells do not wrap


def test_generate_writes_synthetic_into_the_newest_run(tmp_path, gan_run):
    dataset, _ = gan_run
    run = tmp_path / "runs" / "r1"
    shutil.copytree(Path(dataset.path).parent, run)
    result = runner.invoke(app, ["generate", "--runs-root", str(tmp_path / "runs"), "--mode", "balance", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "real train" in result.output and "synthetic.parquet" in result.output
    labels = read_dataset(run / "synthetic.parquet", SYNTHETIC_SCHEMA).labels
    assert labels.tolist().count(2) == 8 and labels.tolist().count(0) == 0  # topped up to 12 per class
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "completed"
    assert manifest["config"]["generate"]["mode"] == "balance"


def test_generate_without_a_trained_gan_says_which_stage_to_run(tmp_path, gan_run):
    dataset, _ = gan_run
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    shutil.copy(dataset.path, run / "dataset.parquet")
    result = runner.invoke(app, ["generate", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "holds gan/checkpoints/last.pt; run `ganaug train` first" in result.output
    assert sorted(p.name for p in run.iterdir()) == ["dataset.parquet"]


def test_generate_bad_option_is_named(tmp_path, gan_run):
    dataset, _ = gan_run
    result = runner.invoke(app, ["generate", "--run-dir", str(Path(dataset.path).parent), "--mode", "lots"])
    assert result.exit_code == 2 and "mode" in result.output and "Traceback" not in result.output


def test_a_named_checkpoint_file_is_the_one_sampled_and_the_default_is_best(tmp_path, gan_run):
    dataset, gan = gan_run
    run = tmp_path / "runs" / "r1"
    shutil.copytree(Path(dataset.path).parent, run)
    checkpoints = run / "gan" / "checkpoints"
    common = ["generate", "--run-dir", str(run), "--mode", "per_class", "--per-class", "2", "--device", "cpu"]
    sampled = {}
    for name in ("last.pt", "best.pt", None):
        result = runner.invoke(app, common + (["--checkpoint", str(checkpoints / name)] if name else []))
        assert result.exit_code == 0, result.output
        choice = checkpoint_choice(run / "synthetic.parquet")
        sampled[name] = (choice["file"], choice["checkpoint_id"])
        assert f"sampled {choice['file']} (step {choice['step']})" in result.output
    assert sampled["last.pt"] == ("last.pt", gan.checkpoint_id)
    assert sampled["best.pt"] == sampled[None] == ("best.pt", gan.best_checkpoint_id)
    assert gan.checkpoint_id != gan.best_checkpoint_id  # so the two choices are told apart
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["stages"]["generate"]["inputs"]["checkpoint"]["path"].endswith("best.pt")


def test_generate_help_names_the_default_checkpoint_truthfully():
    result = runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "300"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "default: <run-dir>/gan/checkpoints/best.pt" in text and "checkpoints/last.pt)" not in text
