"""Logs of a run: console lines name their flow or task run in one shape in every process (Dask workers
included), and ganaug's own records in a run reach the Prefect UI."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from ganaug.cli.app import CONSOLE_LEVEL_ENV, ConsoleLevel, RunFormatter, configure_console_logging


def _record(name: str, message: str, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


RECORDS = [
    (_record("prefect.task_runs", "Finished in state Completed()", task_run_name="real seed 0", flow_run_name="r1"),
     "INFO prefect.task_runs [task run 'real seed 0']: Finished in state Completed()"),
    (_record("prefect.flow_runs", "Beginning flow run", flow_run_name="20261207-1a2b"),
     "INFO prefect.flow_runs [flow run '20261207-1a2b']: Beginning flow run"),
    (_record("ganaug.evaluate.stage", "4 protocol runs"), "INFO ganaug.evaluate.stage: 4 protocol runs"),
]


@pytest.mark.parametrize(("record", "line"), RECORDS)
def test_console_lines_name_the_run_they_belong_to(record: logging.LogRecord, line: str) -> None:
    assert RunFormatter().format(record) == line


def test_processes_started_by_ganaug_print_prefect_lines_in_the_same_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prefect's console formatter in a process ganaug starts (a Dask worker) is configured from the environment
    the CLI leaves: it formats a run's records as the CLI's own console does."""
    import logging.config

    from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config

    environ = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_LOGGING_FORMATTERS_")}
    monkeypatch.setattr(os, "environ", environ)  # the environment a `ganaug` command leaves to its child processes
    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)  # leave this process's handlers alone
    configure_console_logging(logging.WARNING)
    standard = load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)["formatters"]["standard"]
    factory = logging.config.DictConfigurator({}).configure_custom  # builds the formatter as dictConfig does
    formatter = factory(dict(standard))
    assert [formatter.format(record) for record, _ in RECORDS] == [line for _, line in RECORDS]
    assert environ[CONSOLE_LEVEL_ENV] == "WARNING"


def test_the_console_shows_prefect_run_states_and_other_records_at_the_chosen_level() -> None:
    quiet = ConsoleLevel(logging.WARNING)
    assert quiet.filter(_record("prefect.task_runs", "Finished in state Completed()"))
    assert not quiet.filter(_record("ganaug.evaluate.stage", "4 protocol runs"))
    assert not quiet.filter(_record("distributed.scheduler", "State start"))
    assert quiet.filter(_record("ganaug.gan.stage", "mode collapse", logging.WARNING))
    assert ConsoleLevel(logging.INFO).filter(_record("ganaug.evaluate.stage", "4 protocol runs"))


def test_dask_logs_go_through_the_same_handlers() -> None:
    import distributed  # noqa: F401  (its logging config gives its loggers handlers of their own)

    from flows.logs import route_dask_logs

    route_dask_logs()
    for name in ("distributed", "distributed.client"):
        logger = logging.getLogger(name)
        assert logger.propagate and not [h for h in logger.handlers if type(h) is logging.StreamHandler]


def test_ganaug_records_in_flow_and_task_runs_reach_the_prefect_ui(api: Any) -> None:
    from prefect import flow, task
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    import flows  # noqa: F401  (sets up the run logging, as every entry point to the flows does)

    log = logging.getLogger("ganaug.evaluate.stage")

    @task(name="protocol_run", task_run_name="real seed 0")
    def protocol_run() -> None:
        log.info("trained real seed 0: accuracy %.2f", 0.5)

    @flow(name="evaluate")
    def evaluate() -> None:
        log.info("evaluation: %d protocol runs", 1)
        protocol_run()

    log.info("outside any run: stays local")
    state = evaluate(return_state=True)
    APILogWorker.drain_all(timeout=10)
    logs = api.client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    ours = {log.message: log for log in logs if log.name == "ganaug.evaluate.stage"}
    assert set(ours) == {"evaluation: 1 protocol runs", "trained real seed 0: accuracy 0.50"}
    assert ours["evaluation: 1 protocol runs"].task_run_id is None
    assert ours["trained real seed 0: accuracy 0.50"].task_run_id is not None
