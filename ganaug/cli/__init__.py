"""The `ganaug` command: one subcommand per stage, plus the whole pipeline."""

from __future__ import annotations

from ganaug.cli import ingest as _ingest  # noqa: F401  (registers `ganaug ingest`)
from ganaug.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
