"""The `ganaug` command: one subcommand per stage, plus the whole pipeline."""

from __future__ import annotations

from ganaug.cli import evaluate as _evaluate  # noqa: F401  (registers `ganaug evaluate` and `ganaug report`)
from ganaug.cli import generate as _generate  # noqa: F401  (registers `ganaug generate`)
from ganaug.cli import ingest as _ingest  # noqa: F401  (registers `ganaug ingest`)
from ganaug.cli import run as _run  # noqa: F401  (registers `ganaug run` and `ganaug ui`)
from ganaug.cli import search as _search  # noqa: F401  (registers `ganaug search`)
from ganaug.cli import train as _train  # noqa: F401  (registers `ganaug train`)
from ganaug.cli import tune as _tune  # noqa: F401  (registers `ganaug tune`)
from ganaug.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
