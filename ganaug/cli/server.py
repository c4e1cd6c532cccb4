"""The Prefect servers ganaug starts: the temporary one of a `ganaug run` without PREFECT_API_URL, and the
server and UI of `ganaug ui`.

Prefect would start the temporary one itself, in the same process group: a Ctrl-C then reaches the server
too (the flow cannot record its end, and the client retries for half a minute), and a kill -9 of
`ganaug run` leaves the server running. A plain child `prefect server start` of `ganaug ui` would be
left running, re-parented to init, by a kill -9 or SIGTERM of `ganaug ui`. Both run under
`ganaug.watchdog` in a session of their own and are stopped when their command ends, however it ends.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ganaug.errors import ConfigError, GanAugError

STARTUP_SECONDS = 180.0


def is_loopback(host: str) -> bool:
    """True when `host` (an address or a name) only ever means this machine: 127.0.0.0/8, ::1, localhost."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False  # unresolvable: not known to be local
    return bool(addresses) and all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def check_ui_host(host: str, allow_remote: bool) -> str | None:
    """Refuse to serve the Prefect API (it has no authentication) beyond this machine unless asked to.

    Returns the warning to print for a non-loopback `host` with `allow_remote`; raises `ConfigError` without it.
    """
    if is_loopback(host):
        return None
    if not allow_remote:
        raise ConfigError(f"--host {host} would serve the Prefect API and UI, which have no authentication, to the "
                          "network (anyone who reaches it can read and start runs); keep --host 127.0.0.1, or add "
                          "--allow-remote to do it anyway")
    return (f"--host {host} serves the Prefect API and UI without authentication: anyone who can reach this "
            "machine can read and start runs")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def server_command(port: int) -> list[str]:
    """The command Prefect itself uses for its temporary server (API only, no UI)."""
    import prefect

    return [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent), "--factory",
            "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "error",
            "--lifespan", "on"]


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def call_watched(command: list[str], env: dict[str, str]) -> int:
    """Run `command` (a server) in the foreground until it exits or this process ends; its exit code.

    It runs under `ganaug.watchdog` in a session of its own: a Ctrl-C or SIGTERM here stops it before this
    process exits, and a kill -9 of this process stops it through the watchdog, so no server outlives us.
    """
    process = subprocess.Popen([sys.executable, "-m", "ganaug.watchdog", str(os.getpid()), "--", *command],
                               env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_server(process)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the watchdog and with it the server (its whole session)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def temporary_server() -> Iterator[str]:
    """Start a Prefect API on a free local port for the block; yields its URL (…/api)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ganaug.watchdog", str(os.getpid()), "--", *server_command(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not _healthy(api):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
                    raise GanAugError("the temporary Prefect server did not start" + (f": {' | '.join(tail)}" if tail else "")
                                      + "; set PREFECT_API_URL to a running server (`ganaug ui`)")
                time.sleep(0.3)
            with temporary_settings(updates={PREFECT_API_URL: api}):
                try:
                    yield api
                finally:
                    _drain_prefect_workers()
        finally:
            stop_server(process)


def _drain_prefect_workers() -> None:
    """Send the logs and events still queued for the API while the server is up (not at exit, into the void)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            worker.drain_all(timeout=10)
