"""The `ganaug` command line: summaries, one-line errors, exit codes, --debug."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_inputs import files_under
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.errors import DataError

runner = CliRunner()


def test_help_lists_stages() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "ingest" in result.output


def test_ingest_digits_prints_class_counts_and_writes_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "--runs-root", str(tmp_path), "--run-id", "r1", "--train-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    all_row = next(line for line in result.output.splitlines() if "│ all" in line)
    assert all_row.split("│")[2:5] == ["   586 ", " 269 ", "  359 "]  # half of each class kept (rounded half to even), val/test whole
    assert (tmp_path / "r1" / "dataset.parquet").is_file() and (tmp_path / "r1" / "run.json").is_file()
    assert "train" in result.output and "test" in result.output


def test_ingest_from_config_file(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("seed: 7\ntrain_per_class: 4\n")
    result = runner.invoke(app, ["ingest", "-c", str(config), "--runs-root", str(tmp_path / "runs"), "--run-id", "r"])
    assert result.exit_code == 0, result.output
    assert "│ all   │    40 │" in result.output


def test_bad_input_is_one_line_nonzero_exit_and_no_run_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", "--source", "npz", "--path", str(tmp_path / "missing.npz"), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "missing.npz does not exist" in result.output and "Traceback" not in result.output
    assert files_under(tmp_path / "runs") == []


def test_unknown_option_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text('{"seeed": 1}')
    result = runner.invoke(app, ["ingest", "-c", str(config), "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "seeed: unknown option" in result.output


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "ingest", "--source", "npz", "--path", str(tmp_path / "m.npz"), "--runs-root", str(tmp_path)])
    assert result.exit_code != 0 and isinstance(result.exception, DataError)


@pytest.mark.parametrize("flag", [["--imbalance", "3"], ["--imbalance", "3=x"]])
def test_bad_imbalance_flag(tmp_path: Path, flag: list[str]) -> None:
    result = runner.invoke(app, ["ingest", *flag, "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "--imbalance expects CLASS=COUNT" in result.output


def test_a_boolean_for_a_number_is_refused_not_read_as_one(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("train_per_class: true\n")
    result = runner.invoke(app, ["ingest", "-c", str(config), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "train_per_class: expected a number, got the boolean true" in result.output
    assert files_under(tmp_path / "runs") == []


def test_a_key_given_twice_in_a_yaml_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("seed: 1\ntrain_per_class: 4\nseed: 2\n")
    result = runner.invoke(app, ["ingest", "-c", str(config), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "duplicate key 'seed'" in result.output and "line 3" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_protocol_table_has_a_header_on_every_column() -> None:
    from types import SimpleNamespace

    from ganaug.cli.evaluate import protocol_table

    headers = [column.header for column in protocol_table(SimpleNamespace(runs=0, summary=[])).columns]
    assert len(headers) == 11 and all(headers) and headers.count("verdict") == 2
