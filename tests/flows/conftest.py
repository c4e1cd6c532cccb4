"""One Prefect test server for every flow test, and a tiny pipeline run the tests share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# pytest puts tests/ on sys.path, where tests/flows/ (no __init__.py) would be taken for the `flows`
# namespace package and shadow the project's `flows` package under an editable install.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness

TINY_CONFIG: dict[str, Any] = {
    "ingest": {"train_per_class": 12},
    "gan": {"steps": 6, "batch_size": 16, "g_width": 16, "d_width": 16, "latent_dim": 8, "metrics_every": 2,
            "checkpoint_every": 3, "grid_every": 3, "grid_columns": 2, "device": "cpu", "ema_decay": None,
            "diffaugment": None},
    "generate": {"mode": "per_class", "per_class": 12, "device": "cpu", "use_ema": False},
    "evaluate": {"protocols": ["real", "augmented"], "seeds": 2, "generative_metrics": False,
                 "train": {"steps": 10, "batch_size": 64, "device": "cpu"},
                 "arch": {"blocks": [{"channels": 4}], "head_width": 0}},
    "search": {"strategy": "random", "n_trials": 2, "parallel": 2, "steps": 10, "final_steps": 10, "storage": "memory",
               "space": {"max_blocks": 1, "channels": [4, 8], "head_widths": [0], "kernels": [3]}},
}


def make_tiny_config(root: Path, **orchestration: Any) -> Any:
    """A pipeline config that runs end to end in seconds, writing under `root`."""
    from ganaug.pipeline import PipelineConfig

    settings = {"runs_root": str(root / "runs"), "cache_dir": str(root / "cache"), "retry_delay_seconds": 0, **orchestration}
    return PipelineConfig.model_validate({**TINY_CONFIG, "orchestration": settings})


def processes_of(prefect_home: Path) -> list[int]:
    """Processes started with this PREFECT_HOME in their environment (a test's `ganaug run` and what it started)."""
    marker = f"PREFECT_HOME={prefect_home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="session")
def tiny_config() -> Any:
    """`tiny_config(root, **orchestration)`: the tiny pipeline config writing under `root`."""
    return make_tiny_config


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Any:
    """The session's Prefect API (a temporary database and server, started once)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline")


@pytest.fixture(scope="session")
def first_run(tiny_root: Path) -> Any:
    """The tiny pipeline, run once for the session: (final state, config)."""
    from flows import pipeline

    cfg = make_tiny_config(tiny_root, run_id="first")
    state = pipeline(cfg, return_state=True)
    return state, cfg


class PrefectApi:
    """Reads back what a flow run recorded on the Prefect server."""

    def __init__(self) -> None:
        from prefect import get_client

        self.client = get_client(sync_client=True)

    def flow_run_ids(self, flow_run_id: Any) -> list[Any]:
        """The flow run and its subflow runs (recursively)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterParentFlowRunId,
        )

        ids, frontier = [flow_run_id], [flow_run_id]
        while frontier:
            children = self.client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
            )
            frontier = [child.id for child in children if child.id not in ids]
            ids += frontier
        return ids

    def task_runs(self, flow_run_id: Any) -> list[Any]:
        """Task runs of the flow run and its subflows (subflow placeholders left out)."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            TaskRunFilter,
            TaskRunFilterSubFlowRuns,
        )

        return self.client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=self.flow_run_ids(flow_run_id))),
            task_run_filter=TaskRunFilter(subflow_runs=TaskRunFilterSubFlowRuns(exists_=False)),
        )

    def artifacts(self, flow_run_id: Any) -> list[Any]:
        from prefect.client.schemas.filters import (
            ArtifactFilter,
            ArtifactFilterFlowRunId,
        )

        return self.client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=self.flow_run_ids(flow_run_id)))
        )


@pytest.fixture(scope="session")
def api(prefect_server: Any) -> PrefectApi:
    return PrefectApi()
