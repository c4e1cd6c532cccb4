"""`ganaug run` (the whole pipeline as a Prefect flow) and `ganaug ui` (the Prefect server and UI).

Prefect and the flows are imported inside the commands so `ganaug --help` stays fast.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from ganaug.cli.app import app, cli_errors, console, debugging, err_console
from ganaug.cli.server import call_watched, check_ui_host, temporary_server
from ganaug.configbase import read_config_file, validate_config
from ganaug.errors import ConfigError, GanAugError
from ganaug.runs import RunFolder

DEFAULT_UI_PORT = 4200

def pipeline_config(config_file: Path | None, budget: str, overrides: dict[str, dict[str, Any]]) -> Any:
    """The `PipelineConfig` of a `ganaug run`: budget, then the config file, then the given options."""
    from ganaug.pipeline import SMALL_BUDGET, PipelineConfig, deep_merge

    if budget not in ("small", "full"):
        raise ConfigError(f"--budget must be 'small' or 'full', not {budget!r}")
    data = copy.deepcopy(SMALL_BUDGET) if budget == "small" else {}
    if config_file is not None:
        data = deep_merge(data, read_config_file(config_file))
    given = {section: {k: v for k, v in values.items() if v is not None} for section, values in overrides.items()}
    data = deep_merge(data, {section: values for section, values in given.items() if values})
    cfg = validate_config(PipelineConfig, data, str(config_file) if config_file is not None else "options")
    for option, path in (("ingest.path", cfg.ingest.path), ("ingest.labels_path", cfg.ingest.labels_path),
                         ("ingest.unlabelled_path", cfg.ingest.unlabelled_path)):
        if path is not None and not Path(path).exists():
            raise ConfigError(f"{option}: {path} does not exist")
    return cfg


def with_run_id(cfg: Any) -> Any:
    """`cfg` with its run id decided (a new time-stamped one when none was given): the lock and the flow run's name need it."""
    if cfg.orchestration.run_id is not None:
        return cfg
    from ganaug.runs import new_run_id

    return cfg.model_copy(update={"orchestration": cfg.orchestration.model_copy(update={"run_id": new_run_id()})})


class _DropInterruptTracebacks(logging.Filter):
    """Prefect logs a Ctrl-C as a crash with its traceback; the CLI says 'interrupted' in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        return not (isinstance(error, KeyboardInterrupt) or "KeyboardInterrupt" in message
                    or "interrupt signal" in message)


class _DropOneLineErrorTracebacks(logging.Filter):
    """Prefect logs a failed flow's `GanAugError` with its traceback; the CLI says it in one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], GanAugError))


def quiet_interrupt_logs() -> None:
    """Keep Prefect's crash reports of a Ctrl-C (with tracebacks) off the console, and (without --debug) the
    tracebacks of ganaug's own errors, which the CLI prints in one line (the UI's logs keep them)."""
    drop, one_line = _DropInterruptTracebacks(), _DropOneLineErrorTracebacks()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine", ""):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _DropInterruptTracebacks) for f in handler.filters):
                handler.addFilter(drop)
            if (isinstance(handler, logging.StreamHandler) and not debugging()
                    and not any(isinstance(f, _DropOneLineErrorTracebacks) for f in handler.filters)):
                handler.addFilter(one_line)


def flow_run_url(flow_run_id: Any, ui: str | None = None) -> str:
    """The flow run's page in the UI that the server at `ui` opens (default: `ganaug ui` on this machine)."""
    ui = (ui or f"http://127.0.0.1:{DEFAULT_UI_PORT}").rstrip("/")
    return f"{ui}{default_ui_path(ui)}/runs/flow-run/{flow_run_id}"


def default_ui_path(ui: str) -> str:
    """Where under `ui` the server's default UI lives: '/v2' for the V2 UI (the default since Prefect 3.8), '' for V1.

    Asked from the server's /ui-settings; where it serves no UI (or does not answer), this machine's
    setting (`PREFECT_SERVER_UI_V2_ENABLED`) decides, as it does for `ganaug ui`.
    """
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.cloud.ui_url and ui.startswith(settings.cloud.ui_url):
        return ""  # Prefect Cloud's UI
    try:
        with urllib.request.urlopen(f"{ui}/ui-settings", timeout=3) as response:
            served = json.load(response)
        base = served[f"{served['default_ui']}_base_url"]  # None: the server serves no UI
    except (OSError, ValueError, KeyError, TypeError):
        base = None
    if base is None:
        return "/v2" if getattr(settings.server.ui, "v2_enabled", False) else ""
    return str(base).rstrip("/")


def _summary_tables(summary: Any) -> list[Table]:
    stages = Table(title=f"ganaug run {summary.run_id}")
    stages.add_column("stage")
    stages.add_column("outcome")
    for name, outcome in summary.stages.items():
        stages.add_row(name, outcome)
    evaluation = Table(title="held-out test accuracy (real test split)")
    for column in ("protocol", "seeds", "accuracy", "vs real (CI)"):
        evaluation.add_column(column, justify="left" if column == "protocol" else "right")
    for row in summary.evaluation:
        ratio = f" x{row['ratio']:g}" if row.get("ratio") is not None else ""
        kept = f" ({row['train_fraction']:.0%} real)" if row["train_fraction"] < 1 else ""
        interval = row.get("vs_real")
        ci = ""
        if interval:
            ci = f"{interval['mean']:+.3f}"
            if interval.get("low") is not None:
                ci += f" [{interval['low']:+.3f}, {interval['high']:+.3f}]"
        evaluation.add_row(f"{row['protocol']}{ratio}{kept}", str(row["runs"]),
                           f"{row['accuracy_mean']:.4f} ± {row['accuracy_std']:.4f}", ci)
    return [stages, evaluation]


@app.command("run")
def run_command(
    config: Path = typer.Option(None, "--config", "-c", help="YAML or JSON file with a PipelineConfig (sections ingest, gan, generate, evaluate, search, orchestration)."),
    budget: str = typer.Option("small", "--budget", help="small: a few minutes on 2 CPU cores (default); full: every stage's own defaults."),
    source: str = typer.Option(None, "--source", "-s", help="Ingest source: digits (built-in), idx, folder, npz or table."),
    path: Path = typer.Option(None, "--path", "-p", help="Ingest input file or folder."),
    unlabelled: Path = typer.Option(None, "--unlabelled", help="An unlabelled pool in the same format as --path (ingest.unlabelled_path)."),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="Keep K labels per class; the rest of the training split becomes the unlabelled pool (ingest.labels_per_class)."),
    run_id: str = typer.Option(None, "--run-id", help="Run folder name (default: a new time-stamped id); reuse an id to resume that run."),
    runs_root: Path = typer.Option(None, "--runs-root", help="Folder that holds run folders (default data/runs)."),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Where finished stages are cached (default data/cache/prefect)."),
    refresh: list[str] = typer.Option(None, "--refresh", help="Rerun this stage even if cached: ingest, train_gan, generate, evaluate, search (repeatable)."),
    task_runner: str = typer.Option(None, "--task-runner", help="threads (default) or dask: how evaluation runs and NAS trials fan out."),
    dask_address: str = typer.Option(None, "--dask-address", help="Address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (implies --task-runner dask)."),
    max_workers: int = typer.Option(None, "--max-workers", help="Concurrent tasks with --task-runner threads."),
    gan_schedule: str = typer.Option(None, "--gan-schedule", help="fixed (default) or learned: the GAN's learning rates and "
                                     "schedule learned from the run history for this dataset (gan.schedule)."),
) -> None:
    """Run the whole pipeline (ingest -> train GAN -> generate -> evaluate -> search) as a Prefect flow."""
    with cli_errors():
        overrides = {
            "ingest": {"source": source, "path": path, "unlabelled_path": unlabelled, "labels_per_class": labels_per_class},
            "gan": {"schedule": gan_schedule},
            "orchestration": {
                "run_id": run_id, "runs_root": runs_root, "cache_dir": cache_dir, "refresh": refresh or None,
                "task_runner": task_runner, "dask_address": dask_address, "max_workers": max_workers,
            },
        }
        cfg = with_run_id(pipeline_config(config, budget, overrides))
        with contextlib.ExitStack() as stack:
            # one writer per run folder: a folder in use is refused here, before any Prefect server or flow starts
            stack.enter_context(RunFolder.create(cfg.orchestration.runs_root, cfg.orchestration.run_id).lock())
            os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
            os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "ganaug")
            from flows import pipeline

            from prefect.settings import get_current_settings

            api, ui = get_current_settings().api.url, get_current_settings().ui_url
            if api is None:  # our own temporary server: out of reach of Ctrl-C, gone with this process
                stack.enter_context(temporary_server())
            console.print(f"Prefect API: {api or 'a temporary local server (set PREFECT_API_URL to use `ganaug ui`)'}")
            quiet_interrupt_logs()
            started = time.perf_counter()
            state = pipeline(cfg, return_state=True)
            summary = state.result()
            seconds = time.perf_counter() - started
        for table in _summary_tables(summary):
            console.print(table)
        for verdict in summary.verdicts:
            console.print(f"[bold]{verdict}[/]")
        console.print(f"best architecture: {summary.best_arch}")
        console.print(f"  val accuracy {summary.best_val_accuracy:.4f}, test accuracy {summary.test_accuracy_real:.4f} "
                      f"(real)" + (f", {summary.test_accuracy_augmented:.4f} (augmented)"
                                   if summary.test_accuracy_augmented is not None else ""))
        console.print(f"finished in {seconds:.0f} s")
        console.print(f"run folder: [bold]{summary.run_dir}[/]  (report: {summary.report_path})")
        flow_run_id = state.state_details.flow_run_id
        if api:
            console.print(f"UI: {flow_run_url(flow_run_id, ui)}")
        else:
            console.print(f"UI: run `ganaug ui` and open {flow_run_url(flow_run_id)} "
                          "(runs are kept in the local Prefect database)")


@app.command("ui")
def ui_command(
    port: int = typer.Option(DEFAULT_UI_PORT, "--port", help="Port of the Prefect API and UI."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (127.0.0.1 keeps it on this machine)."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a --host other than this machine's loopback: the Prefect API has no authentication."),
) -> None:
    """Start the Prefect server (API and UI) on 127.0.0.1; point flows at it with PREFECT_API_URL."""
    with cli_errors():
        warning = check_ui_host(host, allow_remote)
    if warning:
        err_console.print(f"warning: {warning}", style="bold yellow", markup=False, highlight=False, soft_wrap=True)
    api = f"http://{host}:{port}/api"
    # the UI's pages call the API at PREFECT_UI_API_URL, which otherwise assumes port 4200
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": api}
    err_console.print(f"Prefect UI: http://{host}:{port}  (in another shell: export PREFECT_API_URL={api})")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    try:
        raise typer.Exit(code=call_watched(command, env))
    except KeyboardInterrupt:
        raise typer.Exit(code=130) from None
