"""The tiny pipeline through the library's stage runners (no Prefect), killed at named fault points and rerun.

    python fault_driver.py <config.json> <workdir> <point> [<point> ...]

Imports once (nothing is computed before forking), then for each point forks a child that runs the
pipeline in <workdir>/<n>/ with GANAUG_FAULT=<point> (it must die there, of SIGKILL; or, for a disk fault
`<point>=ENOSPC`, stop there with a `GanAugError`, exit 2 as the CLI's), then a child
that reruns it in the same run folder, picking up at the first stage that run.json does not record
as completed, as a user rerunning the failed command would. Each finished run writes the
fingerprints of its final artifacts; the driver prints one JSON object: the fingerprints of an
uninterrupted run, and per point how its first run ended and the fingerprints after the rerun.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

# What the stage runners import on first use, imported once here rather than in every forked run
import ganaug.data.ingest, ganaug.nas.stage, ganaug.report.markdown, sklearn.datasets, torch._dynamo  # noqa: E401,F401
from ganaug.evaluate import EvaluationResult
from ganaug.errors import GanAugError
from ganaug.evaluate.table import read_evaluation
from ganaug.faults import ENV
from ganaug.pipeline import PipelineConfig, search_config_after
from ganaug.runner import checkpoint_id, run_evaluate, run_generate, run_ingest, run_search, run_train
from ganaug.runs import RunFolder
from ganaug.store import dataset_ref

STEPS = {
    "ingest": lambda run, cfg: run_ingest(run, cfg.ingest),
    "train_gan": lambda run, cfg: run_train(run, cfg.gan),
    "generate": lambda run, cfg: run_generate(run, cfg.generate),
    "evaluate": lambda run, cfg: run_evaluate(run, cfg.evaluate),
    "search": lambda run, cfg: run_search(run, search_config_after(cfg.search, _evaluation(run))),
}
TIME_COLUMNS = ("seconds", "cost_seconds", "finished_after", "datetime_start", "datetime_complete", "duration")


def _stages(run: RunFolder) -> dict[str, Any]:
    return run.read_manifest().get("stages", {}) if run.manifest_path.is_file() else {}


def _evaluation(run: RunFolder) -> EvaluationResult:
    return EvaluationResult.model_validate(_stages(run)["evaluate"]["notes"]["result"])


def run_pipeline(root: Path, cfg: PipelineConfig) -> None:
    run = RunFolder.open(root)
    for stage, step in STEPS.items():
        if _stages(run).get(stage, {}).get("status") != "completed":
            step(run, cfg)


def _rows_hash(rows: list[dict[str, Any]]) -> str:
    kept = [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def fingerprints(root: Path) -> dict[str, Any]:
    """What the finished pipeline made: content hashes and hashes of the result tables without timings."""
    run = RunFolder.open(root)
    return {
        "stages": {name: entry["status"] for name, entry in _stages(run).items()},
        "dataset": dataset_ref(run.dataset).content_hash,
        "gan": checkpoint_id(run.gan / "checkpoints" / "last.pt"),
        "synthetic": dataset_ref(run.synthetic).content_hash,
        "evaluation": _rows_hash(read_evaluation(run.evaluation)[0]),
        "trials": _rows_hash(pq.read_table(run.nas / "trials.parquet").to_pylist()),
        "temporaries": sorted(str(p.relative_to(root)) for p in root.rglob(".*.tmp")),
    }


def in_child(work: Any, fault: str | None = None) -> int:
    """Run `work()` in a forked child (with `fault` set); returns its wait status."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if fault is not None:
                os.environ[ENV] = fault
            work()
        except GanAugError:  # refused with one line, as the CLI exits (a full disk: `DiskError`)
            traceback.print_exc()
            code = 2
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return f"exit {os.WEXITSTATUS(status)}"


def main(config: Path, workdir: Path, points: list[str]) -> dict[str, Any]:
    cfg = PipelineConfig.model_validate(json.loads(config.read_text()))

    def finish(root: Path) -> None:
        run_pipeline(root, cfg)
        (root / "fingerprints.json").write_text(json.dumps(fingerprints(root)))

    def read(root: Path) -> dict[str, Any] | None:
        path = root / "fingerprints.json"
        return json.loads(path.read_text()) if path.is_file() else None

    report: dict[str, Any] = {"reference": None, "points": {}}
    reference = workdir / "reference"
    if in_child(lambda: finish(reference)) == 0:
        report["reference"] = read(reference)
    for number, point in enumerate(points):
        root = workdir / str(number)
        first = ended(in_child(lambda root=root: run_pipeline(root, cfg), fault=point))
        rerun = ended(in_child(lambda root=root: finish(root)))
        report["points"][point] = {"first": first, "rerun": rerun, "fingerprints": read(root)}
    return report


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])))
