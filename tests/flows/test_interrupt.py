"""`ganaug run` as a process: Ctrl-C gives one line, exit 130 and a resumable run; kill -9 leaves no
temporary Prefect server behind. These start the real command with its own temporary server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TINY_CONFIG, processes_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _config(tmp_path: Path) -> Path:
    config: dict[str, Any] = json.loads(json.dumps(TINY_CONFIG))
    config["gan"].update(steps=400, checkpoint_every=50, grid_every=None, metrics_every=50)
    config["orchestration"] = {"runs_root": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"), "run_id": "r",
                               "retry_delay_seconds": 0}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start(tmp_path: Path) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PYTHONPATH=str(ROOT), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    # a terminal's Ctrl-C reaches a command whose SIGINT is at its default; a suite started in the background of a
    # non-interactive shell inherits SIGINT ignored, and so would the child without this
    return subprocess.Popen([sys.executable, "-m", "ganaug", "run", "-c", str(_config(tmp_path)), "--budget", "full"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _ours(tmp_path: Path) -> list[int]:
    """Processes started for this test (their environment names its PREFECT_HOME)."""
    return processes_of(tmp_path / "prefect-home")


def _wait_for(predicate: Any, process: subprocess.Popen[str], seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _stages(tmp_path: Path) -> dict[str, Any]:
    try:
        return json.loads((tmp_path / "runs" / "r" / "run.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
@pytest.mark.timeout(600)
def test_ctrl_c_is_one_line_exit_130_and_recorded(tmp_path: Path) -> None:
    process = _start(tmp_path)
    checkpoint = tmp_path / "runs" / "r" / "gan" / "checkpoints" / "step_0000100.pt"
    _wait_for(checkpoint.is_file, process)
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and time.monotonic() - started < 45
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert lines == ["interrupted"], stderr
    assert _stages(tmp_path)["train_gan"]["status"] == "interrupted"
    time.sleep(1)
    assert _ours(tmp_path) == []
    # the next run resumes the interrupted training: tests/flows/test_pipeline.py pins that


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
@pytest.mark.timeout(600)
def test_kill_9_of_ganaug_run_leaves_no_prefect_server(tmp_path: Path) -> None:
    process = _start(tmp_path)
    _wait_for(lambda: "ingest" in _stages(tmp_path), process)
    assert len(_ours(tmp_path)) >= 3  # ganaug run, the watchdog, the server
    process.kill()
    process.communicate()
    deadline = time.monotonic() + 20
    while _ours(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(tmp_path) == []
