"""Disk faults for tests: a full disk through `ganaug.faults` (`GANAUG_FAULT=<point>=ENOSPC`), a read-only folder
by refusing every open for writing below it with EROFS, as a read-only mount does."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def make_read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Opening any file below `folder` for writing fails with EROFS (naming the file, as the OS does)."""
    real_open, folder = os.open, folder.resolve()

    def guarded_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        name = os.fsdecode(path)
        if flags & WRITE_FLAGS and Path(name).resolve().is_relative_to(folder):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), name)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded_open)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file below `folder` (hidden ones too) and the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[Path]:
    """Files an atomic write left behind unfinished (`.<name>.<random>.tmp`)."""
    return sorted(folder.rglob(".*.tmp"))


def one_error_line(output: str) -> str:
    """The one `error:` line of a command's output; fails on a traceback or on a second error line."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    return errors[0]
