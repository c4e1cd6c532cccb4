"""One writer per run folder: an OS file lock (`filelock`) plus a note saying who holds it.

The lock is an `flock` on `<run>/.ganaug.lock`, released by the kernel when its holder exits,
however it exits. Beside it, `.ganaug.lock.json` names the holder (pid, host, command, since) so a
second writer can say whom it waits for. Within one process the lock is re-entrant (the pipeline
holds it while its stage tasks, on threads of the same process, take it again).

A lock whose recorded holder is gone but whose file is still locked (a child process inherited
the descriptor and outlived its parent) is stale: it is broken with a warning by replacing the file.

Taking the lock, writing the note and breaking a stale lock happen as one step under a short
`flock` on the run folder itself (`_guarded`): a writer that finds the lock taken therefore reads
the note of its live holder (or none, while it releases), never the note of a dead predecessor
that the holder has not yet replaced (two writers started together after a kill -9 would otherwise both
"break" the lock and both hold it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ganaug.errors import DataError, RunLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: filelock's own lock only
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LOCK_FILE = ".ganaug.lock"
HOLDER_FILE = ".ganaug.lock.json"
GUARD_TIMEOUT_S = 10.0  # the guard is held for a few file operations; waiting longer means a stuck holder

_held: dict[Path, tuple[FileLock, int]] = {}
_guard = threading.RLock()


@contextlib.contextmanager
def _guarded(folder: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on the folder itself while the lock and its note change hands."""
    if fcntl is None:
        yield
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except FileNotFoundError:
        raise RunLockedError(f"run folder {folder} was removed by another writer while this one took its lock; "
                             "try again") from None
    try:
        deadline = time.monotonic() + GUARD_TIMEOUT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RunLockedError(f"run folder {folder} is being locked by another process for more than "
                                         f"{GUARD_TIMEOUT_S:.0f} s; try again") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(descriptor)  # closing drops the flock


def _holder_note(command: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def read_holder(folder: Path) -> dict[str, Any] | None:
    """Who holds (or last held) the lock of `folder`, as written by the holder; None if unknown."""
    try:
        note = json.loads((folder / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(note: dict[str, Any] | None) -> bool:
    """True when the note's holder ran on this host and its process is gone."""
    if not note or note.get("host") != socket.gethostname():
        return False
    try:
        return not process_alive(int(note["pid"]))
    except (KeyError, TypeError, ValueError):
        return False


def describe(note: dict[str, Any] | None) -> str:
    if not note:
        return "another process (it has not said who it is yet)"
    return (f"pid {note.get('pid')} on {note.get('host')} (`{note.get('command')}`, since {note.get('since')})")


def _try_acquire(folder: Path) -> FileLock | None:
    lock = FileLock(folder / LOCK_FILE, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return None
    return lock


def _acquire(folder: Path, command: str) -> FileLock:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create run folder {folder}: {err.strerror or err}") from None
    with _guarded(folder):
        return _acquire_guarded(folder, command)


def _acquire_guarded(folder: Path, command: str) -> FileLock:
    lock = _try_acquire(folder)
    if lock is None:
        note = read_holder(folder)
        if not _is_stale(note):
            raise RunLockedError(f"run folder {folder} is in use by {describe(note)}; wait for it to finish "
                                 "or use another --run-id")
        log.warning("breaking the stale lock of run folder %s: its holder %s is gone", folder, describe(note))
        (folder / LOCK_FILE).unlink(missing_ok=True)  # a new file: the orphaned descriptor locks the old one
        lock = _try_acquire(folder)
        if lock is None:
            raise RunLockedError(f"run folder {folder} is in use by {describe(read_holder(folder))}")
    else:
        note = read_holder(folder)
        if note and note.get("pid") != os.getpid() and _is_stale(note):
            log.warning("run folder %s: the previous writer %s ended without finishing; taking over", folder,
                        describe(note))
    _write_note(folder, _holder_note(command))
    return lock


def _write_note(folder: Path, note: dict[str, Any]) -> None:
    from ganaug.store import (
        atomic_write_json,  # store imports nothing from here; keep the import local anyway
    )

    atomic_write_json(folder / HOLDER_FILE, note)


@contextlib.contextmanager
def hold(folder: str | Path, command: str | None = None) -> Iterator[bool]:
    """Hold the run folder's lock for the block; yields True when this call took it (not re-entered).

    Raises `RunLockedError` naming the holder when another process has it.
    """
    key = Path(folder).resolve()
    with _guard:
        if key in _held:
            lock, depth = _held[key]
            _held[key] = (lock, depth + 1)
            taken = False
        else:
            lock = _acquire(key, command or default_command())
            _held[key] = (lock, 1)
            taken = True
    try:
        yield taken
    finally:
        with _guard:
            lock, depth = _held[key]
            if depth > 1:
                _held[key] = (lock, depth - 1)
            else:
                del _held[key]
                if key.is_dir():
                    (key / HOLDER_FILE).unlink(missing_ok=True)  # a held lock without a note is never stale
                lock.release()


def held(folder: str | Path) -> bool:
    """True when this process holds the lock of `folder`."""
    return Path(folder).resolve() in _held


def default_command() -> str:
    """The command line of this process, shortened: what a second writer is told is running."""
    argv = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    text = " ".join(argv)
    return text if len(text) <= 200 else text[:197] + "..."
