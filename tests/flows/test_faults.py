"""Crash tests: the pipeline killed (SIGKILL, no clean-up) at named fault points (`ganaug.faults`) across the
five stages, then rerun, ends with the artifacts of an uninterrupted run with the same seed, and leaves no
process behind.

The library path (stage runners, no Prefect) is killed at many points by `fault_driver.py`, which forks
each run from one process that has imported everything, so a run costs about a second of CPU. `ganaug
run` itself (Prefect, its temporary server) is killed once, in the middle of the search.
"""

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
from conftest import TINY_CONFIG, processes_of

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "fork") or not Path("/proc/self/environ").exists(),
                                                   reason="forks and reads /proc")]
# Spread over the stages: a stage started but not done, a file written but not renamed into place (evaluation.parquet
# renamed and report.md not yet: a pair meant to land together), a GAN checkpointed half way (the rerun resumes it),
# outputs written but run.json not yet told, a unit of fanned-out work done.
POINTS = ["ingest:started", "write:dataset.parquet", "train_gan:started", "write:metrics.parquet#1", "write:best.pt",
          "train_gan:finished", "write:synthetic.parquet", "protocol_run#2", "write:report.md#1", "evaluate:finished",
          "nas_trial#1", "nas_final_test#2", "write:best.json"]
# A full or read-only disk met while writing (`ganaug.faults`: the named OSError raised there): the stage stops with a
# one-line `DiskError`, and a rerun once there is space again ends as an uninterrupted run.
DISK_POINTS = ["write:dataset.parquet=ENOSPC", "write:metrics.parquet#1=ENOSPC", "write:synthetic.parquet=EROFS",
               "write:report.md#1=ENOSPC", "write:trials.parquet=EDQUOT"]


def _config(tmp_path: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(json.dumps(TINY_CONFIG))
    config["gan"].update(resume=True, monitor_every=None, grid_every=None)  # a rerun resumes an interrupted training
    config["evaluate"]["seeds"] = 1
    config["orchestration"] = {"runs_root": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache"), "run_id": "r",
                               "retry_delay_seconds": 0}
    return config


def _env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_API", "GANAUG_FAULT"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(Path(__file__).parent)]), OMP_NUM_THREADS="1",
               GANAUG_HISTORY=str(tmp_path / "history.parquet"), PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The library pipeline uninterrupted, and killed at each point then rerun."""
    tmp_path = tmp_path_factory.mktemp("faults")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(_config(tmp_path)))
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "fault_driver.py"), str(config), str(tmp_path),
                           *POINTS, *DISK_POINTS], env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.timeout(900)
def test_every_kill_and_rerun_ends_with_the_uninterrupted_artifacts(driven: dict[str, Any]) -> None:
    reference = driven["reference"]
    assert reference is not None and set(reference["stages"].values()) == {"completed"}
    assert reference["temporaries"] == []
    for point in POINTS:
        outcome = driven["points"][point]
        assert outcome["first"] == "SIGKILL", f"{point}: the first run was not killed there ({outcome['first']})"
        assert outcome["rerun"] == "exit 0", f"{point}: the rerun failed"
        assert outcome["fingerprints"] == reference, point


@pytest.mark.timeout(900)
def test_a_full_or_read_only_disk_at_a_write_stops_with_a_disk_error_and_a_rerun_ends_uninterrupted(
        driven: dict[str, Any]) -> None:
    for point in DISK_POINTS:
        outcome = driven["points"][point]
        assert outcome["first"] == "exit 2", f"{point}: the first run did not stop with a GanAugError ({outcome['first']})"
        assert outcome["rerun"] == "exit 0", f"{point}: the rerun failed"
        assert outcome["fingerprints"] == driven["reference"], point


@pytest.mark.timeout(900)
def test_ganaug_run_killed_mid_search_reruns_to_the_same_artifacts_and_leaves_no_process(
        driven: dict[str, Any], tmp_path: Path) -> None:
    from fault_driver import fingerprints

    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps(_config(tmp_path)))
    command = [sys.executable, "-m", "ganaug", "run", "-c", str(config), "--budget", "full"]
    env = _env(tmp_path)
    killed = subprocess.run(command, env={**env, "GANAUG_FAULT": "nas_trial#1"}, capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    deadline = time.monotonic() + 20
    while processes_of(tmp_path / "prefect-home") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_of(tmp_path / "prefect-home") == []  # the temporary Prefect server went with it
    manifest = json.loads((tmp_path / "runs" / "r" / "run.json").read_text())
    assert manifest["stages"]["search"]["status"] == "running"  # killed there, nothing recorded since
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "cached" in rerun.stdout  # the finished stages came from the cache
    assert fingerprints(tmp_path / "runs" / "r") == driven["reference"]
    assert processes_of(tmp_path / "prefect-home") == []
