"""`ganaug evaluate` and `ganaug report`: summary table, run folder, errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from evalhelpers import tiny_eval_config, write_tiny_dataset, write_tiny_synthetic
from typer.testing import CliRunner

from ganaug.cli import app

runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that table cells do not wrap


def make_run(root: Path, synthetic: bool = True) -> Path:
    write_tiny_dataset(root / "dataset.parquet")
    if synthetic:
        write_tiny_synthetic(root / "synthetic.parquet")
    return root


def tiny_config_file(path: Path, **overrides) -> Path:
    path.write_text(json.dumps(tiny_eval_config(**overrides).model_dump(mode="json")))
    return path


def test_evaluate_prints_the_protocol_table_and_records_the_stage(tmp_path):
    run = make_run(tmp_path / "runs" / "r1")
    config = tiny_config_file(tmp_path / "eval.json", generative_metrics=False)
    result = runner.invoke(app, ["evaluate", "--runs-root", str(tmp_path / "runs"), "-c", str(config),
                                 "--protocols", "real,augmented", "--ratios", "0.5", "--seeds", "2", "--steps", "20"])
    assert result.exit_code == 0, result.output
    assert "augmented x0.5" in result.output and "vs real" in result.output
    assert (run / "evaluation.parquet").is_file() and (run / "report.md").is_file()
    manifest = json.loads((run / "run.json").read_text())
    stage = manifest["stages"]["evaluate"]
    assert stage["status"] == "completed"
    assert manifest["config"]["evaluate"]["train"]["steps"] == 20
    assert manifest["config"]["evaluate"]["protocols"] == ["real", "augmented"]
    assert len(stage["notes"]["result"]["summary"]) == 2


def test_evaluate_accepts_the_nas_best_json_as_architecture(tmp_path):
    run = make_run(tmp_path / "run", synthetic=False)
    best = tmp_path / "best.json"
    best.write_text(json.dumps({"trial": 3, "fitness": 0.9, "arch": {"blocks": [{"channels": 4, "pool": "none"}],
                                                                       "head_width": 0}}))
    config = tiny_config_file(tmp_path / "eval.json")
    result = runner.invoke(app, ["evaluate", "--run-dir", str(run), "-c", str(config), "--arch", str(best),
                                 "--protocols", "real", "--seeds", "1"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["config"]["evaluate"]["arch"]["blocks"][0]["channels"] == 4


def test_evaluate_without_a_generated_run_says_which_stage_to_run(tmp_path):
    make_run(tmp_path / "runs" / "r1", synthetic=False)
    result = runner.invoke(app, ["evaluate", "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "holds synthetic.parquet; run `ganaug generate` first" in result.output
    assert sorted(p.name for p in (tmp_path / "runs" / "r1").iterdir()) == ["dataset.parquet"]


def test_evaluate_bad_options_exit_2_and_write_nothing(tmp_path):
    run = make_run(tmp_path / "run")
    for args, message in [
        (["--ratios", "half"], "--ratios expects a comma-separated list of float"),
        (["--protocols", "real,magic"], "protocols.1"),
        (["--train-fractions", "0,1"], "every train fraction must be in (0, 1]"),
        (["--arch", str(tmp_path / "none.json")], "none.json does not exist"),
    ]:
        result = runner.invoke(app, ["evaluate", "--run-dir", str(run), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in run.iterdir()) == ["dataset.parquet", "synthetic.parquet"]


def test_report_command_rewrites_the_report(tmp_path):
    run = make_run(tmp_path / "run")
    result = runner.invoke(app, ["report", "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    assert "Real vs synthetic samples" in (run / "report.md").read_text()


def test_a_step_budget_of_zero_is_one_clear_line_and_exit_2(tmp_path):
    run = make_run(tmp_path / "run", synthetic=False)
    before = sorted(p.name for p in run.iterdir())
    result = runner.invoke(app, ["evaluate", "--run-dir", str(run), "--protocols", "real", "--steps", "0"])
    assert result.exit_code == 2
    assert "train.steps" in result.output and "greater than or equal to 1" in result.output
    assert "Traceback" not in result.output and sorted(p.name for p in run.iterdir()) == before
