"""`python -m ganaug.watchdog PARENT_PID -- COMMAND...`: run COMMAND for as long as PARENT_PID lives.

Started in a session of its own (so a Ctrl-C in the parent's terminal does not reach COMMAND), it
stops COMMAND and everything it started (its process group) when the parent exits in any way,
kill -9 included, or when the watchdog itself is told to stop (SIGTERM/SIGINT).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ganaug.runlock import process_alive

POLL_SECONDS = 0.2
GRACE_SECONDS = 5.0


def _stop_group(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM to our process group (COMMAND and its children), SIGKILL after a grace period."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgid(0)
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(group, signal.SIGKILL)  # whatever is left, this watchdog included


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m ganaug.watchdog PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), argv[2:]
    stop = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    child = subprocess.Popen(command)
    while not stop and child.poll() is None and process_alive(parent) and os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    if child.poll() is not None:
        return child.returncode
    _stop_group(child)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
