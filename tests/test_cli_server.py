"""`ganaug ui`: the Prefect API has no authentication, so it is served beyond this machine only when asked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.cli.server import is_loopback

runner = CliRunner(env={"COLUMNS": "300"})


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The server commands `ganaug ui` would run (none is started)."""
    commands: list[list[str]] = []

    def call(command: list[str], env: dict[str, str]) -> int:
        commands.append(command)
        return 0

    monkeypatch.setattr("ganaug.cli.run.call_watched", call)
    return commands


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5"])
def test_a_network_host_is_refused_in_one_line_without_allow_remote(host: str, started: list[list[str]]) -> None:
    result = runner.invoke(app, ["ui", "--host", host])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"--host {host}" in result.output and "--allow-remote" in result.output and "no authentication" in result.output
    assert started == []


def test_allow_remote_serves_with_a_plain_warning(started: list[list[str]]) -> None:
    result = runner.invoke(app, ["ui", "--host", "0.0.0.0", "--allow-remote", "--port", "4321"])
    assert result.exit_code == 0, result.output
    assert "warning: --host 0.0.0.0 serves the Prefect API and UI without authentication" in result.output
    assert len(started) == 1 and started[0][started[0].index("--host") + 1] == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_hosts_need_no_flag_and_get_no_warning(host: str, started: list[list[str]]) -> None:
    result = runner.invoke(app, ["ui", "--host", host])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output and len(started) == 1


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and is_loopback("localhost")
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.4"))
