"""A full or read-only disk under `ganaug ingest`, `train` and `generate`: one line naming the path and what to do,
exit 2, nothing half-written. `ganaug run` is covered in tests/flows/test_cli_run.py."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import typer
from disk_faults import make_read_only, one_error_line, snapshot, temporaries
from ingest_inputs import files_under
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.cli.app import cli_errors
from ganaug.faults import ENV

runner = CliRunner()
TINY_GAN = ("steps: 4\nbatch_size: 8\ng_width: 8\nd_width: 8\nlatent_dim: 8\ndevice: cpu\ncheckpoint_every: 2\n"
            "grid_every: null\nmetrics_every: 2\nmonitor_every: null\n")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with an ingested digits subset and a GAN trained for a few steps."""
    root = tmp_path_factory.mktemp("disk")
    result = runner.invoke(app, ["ingest", "--runs-root", str(root / "runs"), "--run-id", "r", "--train-per-class", "3"])
    assert result.exit_code == 0, result.output
    (root / "gan.yaml").write_text(TINY_GAN)
    result = runner.invoke(app, ["train", "--run-dir", str(root / "runs" / "r"), "-c", str(root / "gan.yaml")])
    assert result.exit_code == 0, result.output
    return root


def _copy_run(trained_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "r"
    shutil.copytree(trained_run / "runs" / "r", run)
    return run


def test_a_full_disk_while_ingesting_is_one_line_and_leaves_no_run_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "write:dataset.parquet=ENOSPC")  # the table written, the disk full before it lands
    result = runner.invoke(app, ["ingest", "--runs-root", str(tmp_path / "runs"), "--run-id", "new"])
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert f"cannot write to run folder {tmp_path / 'runs' / 'new'}: no space left on the device" in line
    assert "free space on it (or use another --runs-root) and rerun" in line
    assert files_under(tmp_path / "runs") == []


def test_a_read_only_run_folder_refuses_ingest_in_one_line_and_is_unchanged(trained_run: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy_run(trained_run, tmp_path)
    before = snapshot(run)
    make_read_only(monkeypatch, run)
    result = runner.invoke(app, ["ingest", "--runs-root", str(tmp_path / "runs"), "--run-id", "r"])
    assert result.exit_code == 2, result.output
    assert f"cannot write {run.resolve() / '.ganaug.lock'}: the file system is read-only: remount it writable" in \
        one_error_line(result.output)
    assert snapshot(run) == before


@pytest.mark.parametrize("disk", ["full", "read-only"])
def test_a_full_or_read_only_disk_under_generate_is_one_line_and_writes_no_synthetic_table(
        disk: str, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy_run(trained_run, tmp_path)
    before = snapshot(run)
    if disk == "full":
        monkeypatch.setenv(ENV, "write:synthetic.parquet=ENOSPC")
    else:
        make_read_only(monkeypatch, run)
    result = runner.invoke(app, ["generate", "--run-dir", str(run), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert ("no space left on the device" if disk == "full" else "the file system is read-only") in line
    assert str(run.resolve() if disk == "read-only" else run) in line
    assert not (run / "synthetic.parquet").exists() and temporaries(run) == []
    if disk == "full":
        assert json.loads((run / "run.json").read_text())["stages"]["generate"]["status"] == "failed"
    else:
        assert snapshot(run) == before


def test_a_full_disk_while_training_is_one_line_and_records_the_failure(trained_run: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = _copy_run(trained_run, tmp_path)
    (run / "gan").rename(tmp_path / "old-gan")  # a fresh training
    monkeypatch.setenv(ENV, "write:last.pt=ENOSPC")
    result = runner.invoke(app, ["train", "--run-dir", str(run), "-c", str(trained_run / "gan.yaml")])
    assert result.exit_code == 2, result.output
    assert f"cannot write to run folder {run}: no space left on the device" in one_error_line(result.output)
    assert not (run / "gan" / "checkpoints" / "last.pt").exists() and temporaries(run) == []
    assert json.loads((run / "run.json").read_text())["stages"]["train_gan"]["status"] == "failed"


def test_a_disk_error_outside_a_run_folder_is_one_line_and_other_os_errors_are_not_hidden(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exit_info, cli_errors():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/cache/prefect/result.json")
    assert exit_info.value.exit_code == 2
    assert "cannot write /data/cache/prefect/result.json: no space left on the device" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError), cli_errors():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/nowhere")
