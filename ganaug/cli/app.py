"""The root `ganaug` typer app, shared options and error handling for every subcommand."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ganaug.configbase import StrictModel, load_config
from ganaug.errors import DataError, GanAugError, disk_error
from ganaug.runs import DEFAULT_RUNS_ROOT

app = typer.Typer(
    name="ganaug",
    help="GAN-based data augmentation: ingest -> train -> generate -> evaluate -> search.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)
_state = {"debug": False}

ModelT = TypeVar("ModelT", bound=StrictModel)

ConfigOption = typer.Option(None, "--config", "-c", help="YAML or JSON file with this stage's options.", exists=False)
RunsRootOption = typer.Option(DEFAULT_RUNS_ROOT, "--runs-root", help="Folder that holds run folders.")
RunIdOption = typer.Option(None, "--run-id", help="Run folder name under --runs-root (default: a new time-stamped id).")


# One shape for every console line of a run, whichever process logs it: a record of a Prefect flow or task run
# (Prefect's run loggers put the run's name in the record) names the run. Prefect's own console formatter is given
# the same formats (through its PREFECT_LOGGING_FORMATTERS_STANDARD_* settings) for the processes ganaug starts,
# Dask workers included, so their lines match this process's.
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
FLOW_RUN_FORMAT = "%(levelname)s %(name)s [flow run %(flow_run_name)r]: %(message)s"
TASK_RUN_FORMAT = "%(levelname)s %(name)s [task run %(task_run_name)r]: %(message)s"
CONSOLE_LEVEL_ENV = "GANAUG_CONSOLE_LEVEL"  # the console level of the processes ganaug starts (flows/logs.py)


class RunFormatter(logging.Formatter):
    """`CONSOLE_FORMAT`, or the flow/task run format for a record that carries the run's name."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT)
        self.flow_run, self.task_run = logging.Formatter(FLOW_RUN_FORMAT), logging.Formatter(TASK_RUN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_run_name", None):
            return self.task_run.format(record)
        if getattr(record, "flow_run_name", None):
            return self.flow_run.format(record)
        return super().format(record)


class ConsoleLevel(logging.Filter):
    """Prefect's records pass from INFO (run states); every other logger's from the level -v/--debug chose.

    The flows raise the `ganaug` loggers to INFO so the Prefect UI gets their messages; the console stays as quiet
    as asked.
    """

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or record.name == "prefect" or record.name.startswith("prefect.")


def configure_console_logging(level: int) -> None:
    """Console lines in one shape (`RunFormatter`) at `level`, here and in the processes this one starts."""
    handler = logging.StreamHandler()
    handler.setFormatter(RunFormatter())
    handler.addFilter(ConsoleLevel(level))
    logging.basicConfig(level=level, handlers=[handler])
    if level > logging.DEBUG:  # one line per HTTP request to the Prefect API is noise unless debugging
        logging.getLogger("httpx").setLevel(logging.WARNING)
    for key, value in (("FORMAT", CONSOLE_FORMAT), ("FLOW_RUN_FMT", FLOW_RUN_FORMAT), ("TASK_RUN_FMT", TASK_RUN_FORMAT)):
        os.environ.setdefault(f"PREFECT_LOGGING_FORMATTERS_STANDARD_{key}", value)
    os.environ[CONSOLE_LEVEL_ENV] = logging.getLevelName(level)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress details."),
) -> None:
    _state["debug"] = debug
    configure_console_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


def debugging() -> bool:
    """Whether --debug was given (full tracebacks wanted)."""
    return _state["debug"]


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn a `GanAugError` into a one-line message and exit code 2 (traceback only with --debug).

    A full, read-only or forbidden disk (`OSError` ENOSPC, EDQUOT, EROFS, EACCES, EPERM) met outside a run
    folder's lock, where `RunFolder.lock` has not already made it a `DiskError`, is reported the same way.
    """
    try:
        yield
    except (GanAugError, OSError) as err:
        error = err if isinstance(err, GanAugError) else disk_error(err)
        if error is None or _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(code=130) from None


def build_config(model: type[ModelT], config_file: Path | None, overrides: dict[str, Any]) -> ModelT:
    """A stage config from an optional file plus the CLI options that were given (None = not given)."""
    return load_config(model, config_file, overrides)


def find_run_dir(run_dir: Path | None, runs_root: Path, needs: dict[str, str]) -> Path:
    """`run_dir` if given (checked), else the newest folder under `runs_root` holding every needed file.

    `needs` maps a file (relative to the run folder) to the command that writes it.
    """
    if run_dir is not None:
        for name, command in needs.items():
            if not (run_dir / name).is_file():
                raise DataError(f"--run-dir {run_dir} has no {name}; run `{command}` first")
        return run_dir
    folders = [p for p in runs_root.glob("*") if p.is_dir()] if runs_root.is_dir() else []
    found: list[str] = []
    for name, command in needs.items():
        folders = [p for p in folders if (p / name).is_file()]
        if not folders:
            having = f" that has {' and '.join(found)}" if found else ""
            raise DataError(f"no run folder under {runs_root}{having} holds {name}; run `{command}` first or pass --run-dir")
        found.append(name)
    return max(folders, key=lambda p: (max((p / n).stat().st_mtime for n in needs), p.name))
