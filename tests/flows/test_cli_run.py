"""`ganaug run`: the pipeline from the command line, its summary, and its input checks."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from disk_faults import make_read_only, one_error_line, temporaries
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.faults import ENV

runner = CliRunner()


def test_run_prints_the_summary_run_folder_and_ui_address(first_run: Any, tiny_root: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    _, cfg = first_run
    config = cfg.model_dump(mode="json")
    config["orchestration"]["run_id"] = "from-cli"
    config_file = tiny_root / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["run", "-c", str(config_file), "--budget", "full"])
    assert result.exit_code == 0, result.output
    run_dir = tiny_root / "runs" / "from-cli"
    assert "run folder:" in result.output and str(run_dir) in result.output.replace("\n", "")
    ui = PREFECT_API_URL.value().removesuffix("/api")
    assert f"UI: {ui}/v2/runs/flow-run/" in result.output  # the test server has no UI: Prefect's default, V2
    rows = {cells[1].strip(): cells[2].strip() for line in result.output.splitlines()
            if len(cells := line.split("│")) == 4}
    assert {rows[stage] for stage in ("ingest", "train_gan", "generate")} == {"cached"}
    accuracy = {cells[1].strip(): cells[2].strip() for line in result.output.splitlines()
                if len(cells := line.split("│")) == 6}
    assert accuracy["real"] == accuracy["augmented x1"] == "2"  # seeds per protocol in the accuracy table
    assert (run_dir / "run.json").is_file()


@pytest.mark.parametrize(("served", "path"), [({"default_ui": "v2", "v1_base_url": "/", "v2_base_url": "/v2"}, "/v2"),
                                              ({"default_ui": "v1", "v1_base_url": "/", "v2_base_url": "/v2"}, "")])
def test_ui_link_opens_the_ui_the_server_serves_by_default(served: dict[str, Any], path: str) -> None:
    from ganaug.cli.run import flow_run_url

    class UiSettings(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps(served if self.path == "/ui-settings" else {}).encode()
            self.send_response(200 if self.path == "/ui-settings" else 404)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), UiSettings) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        ui = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            assert flow_run_url("abc", ui) == f"{ui}{path}/runs/flow-run/abc"
        finally:
            server.shutdown()


def test_missing_input_path_fails_before_any_run(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--source", "folder", "--path", str(tmp_path / "nowhere"),
                                 "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert "ingest.path" in result.output and "nowhere does not exist" in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_option_in_pipeline_config_names_it(tmp_path: Path) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text("gan:\n  stepz: 10\n")
    result = runner.invoke(app, ["run", "-c", str(config_file), "--runs-root", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "gan.stepz: unknown option" in result.output
    assert not (tmp_path / "runs").exists()


def test_bad_budget_and_runner_choices_are_rejected(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", "--budget", "huge", "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "--budget" in result.output
    result = runner.invoke(app, ["run", "--dask-address", "tcp://127.0.0.1:8786", "--task-runner", "threads",
                                 "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "dask_address is set but task_runner is 'threads'" in result.output
    result = runner.invoke(app, ["run", "--gan-schedule", "sometimes", "--runs-root", str(tmp_path)])
    assert result.exit_code == 2 and "gan.schedule: Input should be 'fixed' or 'learned'" in result.output


def test_a_dask_address_implies_the_dask_task_runner_and_the_help_says_so() -> None:
    from ganaug.cli.run import pipeline_config
    from ganaug.pipeline import OrchestrationConfig

    cfg = pipeline_config(None, "small", {"orchestration": {"dask_address": "tcp://127.0.0.1:8786", "task_runner": None}})
    assert cfg.orchestration.task_runner == "dask" and cfg.orchestration.dask_address == "tcp://127.0.0.1:8786"
    assert OrchestrationConfig(dask_address="tcp://127.0.0.1:8786").task_runner == "dask"
    assert OrchestrationConfig().task_runner == "threads"
    help_text = " ".join(CliRunner(env={"COLUMNS": "300"}).invoke(app, ["run", "--help"]).output.split())
    assert "(implies --task-runner dask)" in help_text


def _refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting a Prefect server or the pipeline flow fail the test: a refusal must come before either."""
    import flows
    from ganaug.cli import run as run_module

    def started(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a Prefect server or flow was started")

    monkeypatch.setattr(run_module, "temporary_server", started)
    monkeypatch.setattr(flows, "pipeline", started)


def test_run_into_a_folder_another_process_writes_exits_2_at_once_naming_it(
        tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    script = ("import sys, time\nfrom ganaug.runs import RunFolder\n"
              "with RunFolder.open(sys.argv[1]).lock('ganaug run --run-id busy'):\n"
              "    print('ready', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "runs" / "busy")], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(root)})
    _refuse_to_start(monkeypatch)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        config = tiny_config(tmp_path, run_id="busy").model_dump(mode="json")
        config_file = tmp_path / "pipeline.yaml"
        config_file.write_text(yaml.safe_dump(config))
        started = time.monotonic()
        result = runner.invoke(app, ["run", "-c", str(config_file), "--budget", "full"])
        seconds = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2, result.output
    assert result.output.strip() == one_error_line(result.output)  # nothing else: no server, no flow, no traceback
    assert f"in use by pid {holder.pid}" in result.output and "ganaug run --run-id busy" in result.output
    assert seconds < 5
    assert not (tmp_path / "runs" / "busy" / "dataset.parquet").exists()


def test_a_read_only_run_folder_refuses_ganaug_run_in_one_line_before_prefect_starts(
        tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "runs" / "ro"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(tmp_path, run_id="ro").model_dump(mode="json")))
    _refuse_to_start(monkeypatch)
    make_read_only(monkeypatch, run)
    result = runner.invoke(app, ["run", "-c", str(config_file), "--budget", "full"])
    assert result.exit_code == 2, result.output
    assert f"cannot write {run.resolve() / '.ganaug.lock'}: the file system is read-only" in one_error_line(result.output)
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_a_full_disk_under_ganaug_run_is_one_line_exit_2_and_nothing_half_written(
        tmp_path: Path, tiny_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config(tmp_path, run_id="full").model_dump(mode="json")))
    monkeypatch.setenv(ENV, "write:synthetic.parquet=ENOSPC")  # the GAN trained, the disk full when sampling
    result = runner.invoke(app, ["run", "-c", str(config_file), "--budget", "full"])
    assert result.exit_code == 2, result.output
    run = tmp_path / "runs" / "full"
    assert f"cannot write to run folder {run}: no space left on the device" in one_error_line(result.output)
    assert (run / "dataset.parquet").is_file() and not (run / "synthetic.parquet").exists() and temporaries(run) == []


def test_prefect_does_not_print_the_traceback_of_an_error_the_cli_prints_in_one_line() -> None:
    import io
    import logging

    from ganaug.cli.run import quiet_interrupt_logs
    from ganaug.errors import DiskError

    logger, stream = logging.getLogger("prefect.flow_runs"), io.StringIO()
    console = logging.StreamHandler(stream)
    logger.addHandler(console)
    try:
        quiet_interrupt_logs()
        for error in (DiskError("cannot write to run folder x"), ValueError("a bug")):
            console.handle(logger.makeRecord(logger.name, logging.ERROR, __file__, 0, "Encountered exception during "
                                             "execution: %r", (error,), (type(error), error, None)))
    finally:
        logger.removeHandler(console)
    assert "DiskError" not in stream.getvalue() and "ValueError('a bug')" in stream.getvalue()
