"""One exception family with messages written for people."""

from __future__ import annotations

import errno
import os


class GanAugError(Exception):
    """Base of every error ganaug raises on purpose; the CLI prints its message in one line."""


class ConfigError(GanAugError):
    """A configuration value or key is wrong; the message names the option."""


class DataError(GanAugError):
    """Input or artifact data is missing or malformed; the message names the file and column."""


class CheckpointError(GanAugError):
    """A checkpoint is missing, corrupt or incompatible; the message names the file."""


class DivergenceError(GanAugError):
    """GAN training produced a non-finite loss; the last good checkpoint was restored."""


class RunLockedError(GanAugError):
    """Another process is writing to the run folder; the message names it (pid, host, command, since)."""


class DiskError(GanAugError):
    """A file could not be written: the disk is full or read-only, or writing is not permitted; the message names the path."""


# What is wrong, and what to do, for each disk error. The atomic writes (ganaug.store) leave no half-written file.
_DISK_ADVICE = {
    errno.ENOSPC: "no space left on the device: free space on it",
    errno.EDQUOT: "the disk quota is used up: free space",
    errno.EROFS: "the file system is read-only: remount it writable",
    errno.EACCES: "permission denied: give this user access to it",
    errno.EPERM: "operation not permitted: give this user access to it",
}


def disk_error(err: BaseException, folder: str | os.PathLike[str] | None = None) -> DiskError | None:
    """The `DiskError` that `err` stands for when it is a full, read-only or forbidden disk; None otherwise.

    Names the file the OS names, else `folder` (the run folder being written: a failed write() names no file).
    """
    if not isinstance(err, OSError) or err.errno not in _DISK_ADVICE:
        return None
    verb = "access" if err.errno in (errno.EACCES, errno.EPERM) else "write"  # a forbidden read is no write
    if err.filename is not None:
        name = os.fsdecode(err.filename) if isinstance(err.filename, (str, bytes, os.PathLike)) else err.filename
        where = f"cannot {verb} {name}"
    elif folder is not None:
        where = f"cannot {verb} {'in' if verb == 'access' else 'to'} run folder {os.fsdecode(folder)}"
    else:
        where = f"cannot {verb} a file (--debug shows which)"
    if folder is None:
        return DiskError(f"{where}: {_DISK_ADVICE[err.errno]} and rerun")
    return DiskError(f"{where}: {_DISK_ADVICE[err.errno]} (or use another --runs-root) and rerun; "
                     "nothing was half-written")
