"""Named fault points: where a crash test may kill the process (SIGKILL, no clean-up, like a power cut),
or where a disk test may make the disk fail.

`GANAUG_FAULT=<point>` kills the process the first time it reaches `<point>`; `<point>#<n>` the n-th
time. `<point>=ENOSPC` (or `=EROFS`, any errno name) raises that `OSError` there instead, as a write to a
full or read-only disk does (without a file name, as a failed write() reports it). Without the variable a
fault point does nothing. Points are passed at the moments a crash is most awkward: a stage started or
finished but not yet recorded in run.json (`<stage>:started`, `<stage>:finished`), a file written but not
yet renamed into place (`write:<file name>`), a GAN checkpoint saved (`gan:checkpoint`), a unit of
fanned-out work done (`protocol_run`, `nas_trial`, `nas_final_test`, `tune_trial`), or started in its Prefect
task (`protocol_run:started`, ...; a transient error there is retried). tests/test_faults.py
kills a pipeline at each of them and checks that a rerun ends with the artifacts of an uninterrupted run.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

ENV = "GANAUG_FAULT"
_counts: dict[str, int] = {}
_lock = threading.Lock()


def reset() -> None:
    """Forget how often each point was reached (a new process starts counting afresh; tests share one process)."""
    with _lock:
        _counts.clear()


def reached(point: str) -> None:
    """Kill this process here (or raise the named disk error) when `GANAUG_FAULT` names this point and time."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    wanted, _, error = wanted.partition("=")
    name, _, nth = wanted.partition("#")
    if name != point:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        if _counts[point] != int(nth or 1):
            return
    if error:
        code = getattr(errno, error)
        raise OSError(code, os.strerror(code))
    os.kill(os.getpid(), signal.SIGKILL)
