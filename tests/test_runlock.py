"""One writer per run folder: a second writer is refused naming the holder; stale locks are broken."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ganaug import runlock
from ganaug.cli import app
from ganaug.errors import RunLockedError
from ganaug.runlock import HOLDER_FILE, LOCK_FILE
from ganaug.runs import RunFolder

ROOT = Path(__file__).resolve().parents[1]

_HOLD = """
import sys, time
from ganaug.runs import RunFolder
run = RunFolder.open(sys.argv[1])
with run.lock("holder-command --run-id r"):
    print("ready", flush=True)
    time.sleep(60)
"""

# takes the lock, then forks a child that inherits the locked descriptor and outlives the parent
_ORPHAN = """
import os, sys, time
from ganaug.runs import RunFolder
run = RunFolder.open(sys.argv[1])
with run.lock("crashed-command"):
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)
"""


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = _python(_HOLD, str(tmp_path / "r"))
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.wait()


def test_second_writer_is_refused_naming_the_holder(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    run = RunFolder.open(tmp_path / "r")
    with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid} on .*holder-command --run-id r.*since 20"):
        with run.stage("ingest"):
            pass
    assert not run.manifest_path.exists()  # nothing was recorded by the refused writer


def test_second_cli_writer_exits_2_with_one_line(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    result = CliRunner().invoke(app, ["ingest", "--runs-root", str(tmp_path), "--run-id", "r", "--train-per-class", "2"])
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}" in result.output and "holder-command" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "dataset.parquet").exists()


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path, holder: subprocess.Popen[str],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    run = RunFolder.open(tmp_path / "r")
    with caplog.at_level(logging.WARNING, logger="ganaug.runlock"), run.stage("ingest"):
        pass
    assert "ended without finishing" in caplog.text
    assert run.read_manifest()["stages"]["ingest"]["status"] == "completed"


def test_stale_lock_of_a_dead_holder_is_broken_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    process = _python(_ORPHAN, str(tmp_path / "r"))
    assert process.stdout is not None
    child = int(process.stdout.readline())
    process.wait()
    try:
        assert json.loads((tmp_path / "r" / HOLDER_FILE).read_text())["pid"] == process.pid
        with caplog.at_level(logging.WARNING, logger="ganaug.runlock"), RunFolder.open(tmp_path / "r").lock():
            assert (tmp_path / "r" / LOCK_FILE).exists()
        # either the kernel lock went with the holder (filelock drops it in forked children) or it is broken
        assert ("breaking the stale lock" in caplog.text or "ended without finishing" in caplog.text)
        assert "crashed-command" in caplog.text
    finally:
        os.kill(child, signal.SIGKILL)


def test_lock_is_reentrant_across_threads_of_one_process(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r")
    errors: list[BaseException] = []

    def stage() -> None:
        try:
            with run.stage("train_gan"):
                pass
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    with run.lock("pipeline"):
        with run.stage("ingest"):
            (run.dataset).write_bytes(b"x")
        thread = threading.Thread(target=stage)
        thread.start()
        thread.join()
    assert not errors
    assert not (run.root / HOLDER_FILE).exists()


def test_orphaned_temporary_files_are_removed_at_the_next_write(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r")
    with run.stage("ingest"):
        run.dataset.write_bytes(b"x")
    orphans = [run.root / ".dataset.parquet.abc123.tmp", run.root / "gan" / "checkpoints" / ".last.pt.xyz.tmp"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(b"partial")
    keep = run.root / "notes.tmp"  # not one of ours (no leading dot): left alone
    keep.write_bytes(b"")
    with run.stage("train_gan"):
        pass
    assert not any(orphan.exists() for orphan in orphans)
    assert keep.exists()


def test_lock_that_created_the_folder_leaves_none_behind(tmp_path: Path) -> None:
    with RunFolder.open(tmp_path / "new").lock():
        pass
    assert not (tmp_path / "new").exists()


def test_interrupted_stage_is_recorded_as_interrupted(tmp_path: Path) -> None:
    run = RunFolder.open(tmp_path / "r")
    with run.stage("ingest"):
        run.dataset.write_bytes(b"x")
    with pytest.raises(KeyboardInterrupt), run.stage("train_gan"):
        raise KeyboardInterrupt
    entry = run.read_manifest()["stages"]["train_gan"]
    assert entry["status"] == "interrupted"


def _contend(folder: Path, start: Any, release: Any, results: Any) -> None:
    """One of two writers started together: report whether it got the lock, then hold it until told."""
    start.wait()
    try:
        lock = runlock._acquire(folder, "contender")
    except RunLockedError:
        results.put("refused")
        return
    results.put("held")
    release.wait(30)
    lock.release()


def _die_holding(folder: Path) -> None:
    runlock._acquire(folder, "killed-writer")
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks writers")
def test_two_writers_after_a_dead_holder_never_both_hold(tmp_path: Path) -> None:
    fork = multiprocessing.get_context("fork")
    folder = tmp_path / "r"
    for trial in range(100):
        dead = fork.Process(target=_die_holding, args=(folder,))
        dead.start()
        dead.join()
        assert dead.exitcode == -signal.SIGKILL and runlock.read_holder(folder)["command"] == "killed-writer"
        start, release, results = fork.Barrier(2), fork.Event(), fork.Queue()
        writers = [fork.Process(target=_contend, args=(folder, start, release, results)) for _ in range(2)]
        for writer in writers:
            writer.start()
        outcomes = sorted(results.get(timeout=20) for _ in writers)
        release.set()
        for writer in writers:
            writer.join(20)
        assert outcomes == ["held", "refused"], f"trial {trial}: {outcomes}"
