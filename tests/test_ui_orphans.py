"""`ganaug ui` leaves no Prefect server behind, however it ends (kill -9 included)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists() or not hasattr(os, "killpg"),
                                reason="reads /proc and uses process groups")


def _ours(prefect_home: Path) -> dict[int, list[str]]:
    """Processes whose environment names this PREFECT_HOME (the test's `ganaug ui` and what it started): pid -> argv."""
    marker = f"PREFECT_HOME={prefect_home}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_the_prefect_server_of_ganaug_ui_ends_with_it(tmp_path: Path, stop: signal.Signals) -> None:
    home = tmp_path / "prefect-home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(home), PYTHONPATH=str(ROOT), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    ui = subprocess.Popen([sys.executable, "-m", "ganaug", "ui", "--port", str(_free_port())], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # the server is up as far as this test needs once its own process exists (`python -m prefect server start`)
        while not any(argv[1:5] == ["-m", "prefect", "server", "start"] for argv in _ours(home).values()):
            assert ui.poll() is None and time.monotonic() < deadline, "ganaug ui started no prefect server"
            time.sleep(0.05)
        ui.send_signal(stop)
        ui.wait(timeout=20)
        deadline = time.monotonic() + 10
        while _ours(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ours(home) == {}, "left running after `ganaug ui` ended"
    finally:
        for pid in _ours(home):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
