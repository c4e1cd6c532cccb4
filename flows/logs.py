"""Logs of flow and task runs: ganaug's own records reach the Prefect UI, and the console keeps one shape.

- The `ganaug` loggers send their records, from INFO, to the Prefect API while a flow or task run is going (the
  UI's Logs tab shows them under the run), whoever started the flow: `ganaug run`, a worker, `serve.py` or a
  Python call. This is what `PREFECT_LOGGING_EXTRA_LOGGERS=ganaug` does, with the level the UI needs; records
  outside a run stay local.
- Dask's loggers print through the same console handler as everything else instead of their own.
- In a process where Prefect's console handler prints (a Dask worker, a plain Python session), `ganaug` and Dask
  records below the console level `ganaug` was started with (`GANAUG_CONSOLE_LEVEL`, default WARNING) stay off the
  console; `ganaug.cli.app` gives Prefect's console formatter its own line formats for those processes.
"""

from __future__ import annotations

import logging
import os

from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler, PrefectConsoleHandler

LIBRARY_LOGGER = "ganaug"
CONSOLE_LEVEL_ENV = "GANAUG_CONSOLE_LEVEL"
DASK_LOGGERS = ("distributed", "bokeh", "tornado")  # those Dask's logging config gives handlers of their own


class InRun(logging.Filter):
    """Only records logged during a flow or task run (the API cannot place any other)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "flow_run_id", None):
            return True
        from prefect.context import get_run_context

        try:
            get_run_context()
        except MissingContextError:
            return False
        return True


class ConsoleLevel(logging.Filter):
    """Prefect's records from INFO; every other logger's from `GANAUG_CONSOLE_LEVEL` (default WARNING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        level = logging.getLevelName(os.environ.get(CONSOLE_LEVEL_ENV, "WARNING"))
        level = level if isinstance(level, int) else logging.WARNING
        return record.levelno >= level or record.name == "prefect" or record.name.startswith("prefect.")


def route_dask_logs() -> None:
    """Dask's loggers print through the root's handlers (one line format), not through handlers of their own."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.split(".")[0] in DASK_LOGGERS and isinstance(logger, logging.Logger):
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:  # the ones Dask's logging config made
                    logger.removeHandler(handler)
                    logger.propagate = True


def setup_run_logging() -> None:
    """Send `ganaug` records in runs to the Prefect API; keep console filters and Dask's loggers in line."""
    library = logging.getLogger(LIBRARY_LOGGER)
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)
    senders = [handler for handler in library.handlers if isinstance(handler, APILogHandler)]
    if not senders:  # PREFECT_LOGGING_EXTRA_LOGGERS=ganaug adds one too
        senders = [APILogHandler()]
        library.addHandler(senders[0])
    for handler in senders:
        if not any(isinstance(f, InRun) for f in handler.filters):
            handler.addFilter(InRun())
    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, ConsoleLevel) for f in handler.filters):
            handler.addFilter(ConsoleLevel())
    route_dask_logs()
