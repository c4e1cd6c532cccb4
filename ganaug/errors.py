"""One exception family with messages written for people."""

from __future__ import annotations


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
