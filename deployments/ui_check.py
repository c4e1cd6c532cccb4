"""End-to-end check of the Prefect UI in a real browser (headless Chromium), offline.

Starts `prefect server` on 127.0.0.1 with a fresh database, runs a tiny pipeline against it (console
logging set up as `ganaug run` sets it up, evaluation and search on a one-worker Dask cluster), opens
the flow run's pages in headless Chromium and checks that the run (named after its run id), its stages
(task runs and the evaluate/search subflows) and its artifacts are shown: the evaluation table, NAS
leaderboard and run summary on the pipeline's own page, the stage artifacts on the ingest, train_gan
and generate task pages, the run summary's links to the reports and its architecture in a code block,
and the sample-grid image embedded in a markdown artifact. Checks that ganaug's own log lines reach the
run's Logs tab and that every console line of the run, Dask's and the workers' included, has one shape
and names its flow or task run. Saves the pages' DOM and screenshots.

    python deployments/ui_check.py [--chromium /usr/bin/chromium] [--out data/cache/ui-check]

Needs a Chromium binary (Debian: `apt-get install chromium`); exits 0 when every check passes.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

TINY_PIPELINE: dict[str, Any] = {
    "ingest": {"train_per_class": 12},
    "gan": {"steps": 20, "batch_size": 16, "g_width": 16, "d_width": 16, "latent_dim": 8, "metrics_every": 5,
            "checkpoint_every": 10, "grid_every": 10, "grid_columns": 3, "device": "cpu"},
    "generate": {"mode": "per_class", "per_class": 12, "device": "cpu"},
    "evaluate": {"protocols": ["real", "augmented"], "seeds": 2, "generative_metrics": False,
                 "train": {"steps": 20, "batch_size": 32, "device": "cpu"},
                 "arch": {"blocks": [{"channels": 8}], "head_width": 0}},
    "search": {"strategy": "random", "n_trials": 2, "steps": 10, "final_steps": 10, "storage": "memory",
               "space": {"max_blocks": 1, "channels": [8], "head_widths": [0]}},
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=30000", "--window-size=1280,1000"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_post(api: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(f"{api}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_server(api: str, server: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"prefect server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"prefect server did not answer at {api}/health within {timeout:.0f} s")


def visible_text(dom: str) -> str:
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))


class Browser:
    """Headless Chromium: the DOM of a page after its scripts ran, and screenshots."""

    def __init__(self, chromium: str, out: Path) -> None:
        self.chromium, self.out = chromium, out

    def _run(self, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="ui-check-profile-") as profile:
            return subprocess.run([self.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                                  capture_output=True, text=True, timeout=180)

    def dom(self, url: str, name: str) -> str:
        dom = self._run(url, "--dump-dom").stdout
        (self.out / f"{name}.html").write_text(dom, encoding="utf-8")
        return dom

    def screenshot(self, url: str, name: str) -> Path:
        path = self.out / f"{name}.png"
        self._run(url, f"--screenshot={path}")
        return path


def run_tiny_pipeline(api: str, workdir: Path) -> tuple[str, str]:
    """Run the tiny pipeline against `api` in a child process; return its flow run id and its console output."""
    code = (
        "import json, logging, sys\n"
        "from ganaug.cli.app import configure_console_logging\n"
        "configure_console_logging(logging.WARNING)\n"  # as `ganaug run` without -v
        "from ganaug.pipeline import PipelineConfig\n"
        "from flows import pipeline\n"
        "cfg = PipelineConfig.model_validate(json.loads(sys.argv[1]))\n"
        "state = pipeline(cfg, return_state=True)\n"
        "print('FLOW_RUN_ID', state.state_details.flow_run_id, state.name)\n"
    )
    config = {**TINY_PIPELINE, "orchestration": {"runs_root": str(workdir / "runs"), "cache_dir": str(workdir / "cache"),
                                                 "task_runner": "dask", "dask_workers": 1}}
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(config)], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=900)
    match = re.search(r"FLOW_RUN_ID (\S+) (\S+)", done.stdout)
    if done.returncode != 0 or match is None or match.group(2) != "Completed":
        raise SystemExit(f"the tiny pipeline did not complete:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return match.group(1), done.stderr


def check(results: list[tuple[str, bool]], name: str, ok: bool) -> None:
    results.append((name, ok))
    print(f"{'PASS' if ok else 'FAIL'}  {name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium", help="Chromium binary.")
    parser.add_argument("--port", type=int, default=0, help="Port for the Prefect server (default: a free one).")
    parser.add_argument("--out", type=Path, default=Path("data/cache/ui-check"), help="Folder for the saved DOMs and screenshot.")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        print(f"no Chromium at {args.chromium}; install it (apt-get install chromium) or pass --chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    base, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryDirectory(prefix="ganaug-ui-check-") as tmp:
        workdir = Path(tmp)
        env = {**os.environ, "PREFECT_HOME": str(workdir / "prefect-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_UI_API_URL": api}
        env.pop("PREFECT_API_URL", None)
        started = time.perf_counter()
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_server(api, server)
            print(f"prefect server up at {base} after {time.perf_counter() - started:.0f} s", flush=True)
            flow_run_id, console = run_tiny_pipeline(api, workdir)
            print(f"tiny pipeline completed: flow run {flow_run_id} ({time.perf_counter() - started:.0f} s)", flush=True)
            (args.out / "console.txt").write_text(console, encoding="utf-8")
            run_ids = sorted(path.name for path in (workdir / "runs").iterdir() if path.is_dir())
            return browse(Browser(args.chromium, args.out), base, api, flow_run_id, console, run_ids)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


CONSOLE_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+( \[(flow|task) run '[^']+'\])?: ")


def check_console(results: list[tuple[str, bool]], console: str) -> None:
    """Every log line of the run in one shape, `LEVEL logger [run]: message`; Prefect's run states name the run."""
    lines = [line for line in console.splitlines() if line.strip()]
    odd = [line for line in lines if not CONSOLE_LINE.match(line) and not line.startswith((" ", "\t", "Traceback"))]
    check(results, f"console: all {len(lines)} lines in one format, Dask's and the workers' included"
                   + (f" (not: {odd[:3]})" if odd else ""), bool(lines) and not odd)
    states = [line for line in lines if "Finished in state" in line]
    unnamed = [line for line in states if " run '" not in line]
    check(results, f"console: all {len(states)} 'Finished in state' lines name their flow or task run",
          bool(states) and not unnamed)
    check(results, "console: the Dask worker's task runs print in that format too",
          any(re.search(r"\[task run '(real|augmented) [^']*seed", line) for line in states))


def browse(browser: Browser, base: str, api: str, flow_run_id: str, console: str, run_ids: list[str]) -> int:
    results: list[tuple[str, bool]] = []
    check_console(results, console)
    run_url = f"{base}/v2/runs/flow-run/{flow_run_id}"
    flow_run = api_post(api, "/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})[0]
    page = visible_text(browser.dom(run_url, "run"))
    check(results, f"run page shows the run '{flow_run['name']}' of flow 'pipeline', Completed",
          flow_run["name"] in page and "pipeline" in page and "Completed" in page)
    check(results, f"the flow run is named after its run folder {run_ids} and the page shows the name",
          run_ids == [flow_run["name"]] and flow_run["name"] in page)
    check(results, "run page shows the run's logs", "run folder:" in page and "pipeline finished:" in page)
    check(results, "run page's logs include ganaug's own log lines (ganaug.pipeline: 'search trains on')",
          "search trains on:" in page)
    tasks = visible_text(browser.dom(f"{run_url}?tab=TaskRuns", "task-runs"))
    check(results, "Task Runs tab lists ingest, train_gan and generate",
          all(re.search(rf"\b{name}-\w+", tasks) for name in ("ingest", "train_gan", "generate")))
    subflows = visible_text(browser.dom(f"{run_url}?tab=SubflowRuns", "subflow-runs"))
    check(results, "Subflow Runs tab lists the evaluate and search stages",
          "evaluate /" in subflows and "search /" in subflows)
    check(results, f"Subflow Runs tab shows the subflows under the run id {flow_run['name']}",
          f"evaluate / {flow_run['name']}" in subflows and f"search / {flow_run['name']}" in subflows)
    artifacts = visible_text(browser.dom(f"{run_url}?tab=Artifacts", "artifacts"))
    expected = ["ganaug-dataset", "ganaug-gan-progress", "ganaug-gan-metrics", "ganaug-gan-samples",
                "ganaug-synthetic", "ganaug-run-summary", "ganaug-pipeline-evaluation", "ganaug-pipeline-nas-leaderboard"]
    missing = [key for key in expected if key not in artifacts]
    check(results, "Artifacts tab lists " + ", ".join(expected) + (f" (missing: {missing})" if missing else ""),
          not missing)
    task_runs = api_post(api, "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    for stage, keys in (("ingest", ["ganaug-dataset"]), ("train_gan", ["ganaug-gan-metrics", "ganaug-gan-samples"]),
                        ("generate", ["ganaug-synthetic"])):
        task_run = next(run for run in task_runs if run["name"].startswith(f"{stage}-"))
        text = visible_text(browser.dom(f"{base}/v2/runs/task-run/{task_run['id']}?tab=Artifacts", f"{stage}-task"))
        check(results, f"{stage} task run page's Artifacts tab lists {', '.join(keys)}", all(key in text for key in keys))
    children = api_post(api, "/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [flow_run_id]}}})
    by_flow = {api_post(api, "/flows/filter", {"flows": {"id": {"any_": [c["flow_id"]]}}})[0]["name"]: c for c in children}
    for flow_name, keys in (("evaluate", ["ganaug-evaluation", "ganaug-evaluation-report"]),
                            ("search", ["ganaug-nas-leaderboard", "ganaug-nas-progress", "ganaug-nas-report"])):
        text = visible_text(browser.dom(f"{base}/v2/runs/flow-run/{by_flow[flow_name]['id']}?tab=Artifacts",
                                        f"{flow_name}-artifacts"))
        check(results, f"{flow_name} subflow's Artifacts tab lists {', '.join(keys)}", all(key in text for key in keys))
    check_run_summary(results, browser, base, api, flow_run_id)
    samples = api_post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["ganaug-gan-samples"]},
                                                                "flow_run_id": {"any_": [flow_run_id]}},
                                                  "sort": "CREATED_DESC", "limit": 1})[0]
    artifact_url = f"{base}/v2/artifacts/artifact/{samples['id']}"
    dom = browser.dom(artifact_url, "gan-samples-artifact")
    check(results, "sample-grid artifact page holds the embedded PNG (<img src=data:image/png;base64,...>)",
          re.search(r'<img[^>]+src="data:image/png;base64,', dom) is not None)
    shot = browser.screenshot(artifact_url, "gan-samples-artifact")
    check(results, f"screenshot of the sample-grid artifact saved to {shot}", shot.is_file() and shot.stat().st_size > 0)
    failed = [name for name, ok in results if not ok]
    print(f"{len(results) - len(failed)}/{len(results)} UI checks passed")
    return 1 if failed else 0


def check_run_summary(results: list[tuple[str, bool]], browser: Browser, base: str, api: str, flow_run_id: str) -> None:
    """The run summary's report paths are links to the reports' artifacts, and its architecture fits the page."""
    summary = api_post(api, "/artifacts/filter", {"artifacts": {"key": {"any_": ["ganaug-run-summary"]},
                                                                "flow_run_id": {"any_": [flow_run_id]}},
                                                  "sort": "CREATED_DESC", "limit": 1})[0]
    url = f"{base}/v2/artifacts/artifact/{summary['id']}"
    dom = browser.dom(url, "run-summary-artifact")
    links = re.findall(r'<a[^>]+href="([^"]*artifacts/artifact/[0-9a-f-]+)"[^>]*>([^<]*report\.md)</a>', dom)
    targets = []
    for href, _ in links:
        artifact_id = href.rsplit("/", 1)[-1]
        found = api_post(api, "/artifacts/filter", {"artifacts": {"id": {"any_": [artifact_id]}}})
        targets.append(found[0]["key"] if found else None)
    check(results, f"run summary: the report paths are links to the report artifacts ({targets})",
          sorted(k for k in targets if k) == ["ganaug-evaluation-report", "ganaug-nas-report"])
    check(results, "run summary: the best architecture in one readable line and its JSON in a code block (<pre>)",
          re.search(r"<pre[^>]*>.*?&quot;blocks&quot;|<pre[^>]*>.*?\"blocks\"", dom, flags=re.S) is not None
          and " | " in visible_text(dom))
    shot = browser.screenshot(url, "run-summary-artifact")
    check(results, f"screenshot of the run summary saved to {shot}", shot.is_file() and shot.stat().st_size > 0)


if __name__ == "__main__":
    sys.exit(main())
