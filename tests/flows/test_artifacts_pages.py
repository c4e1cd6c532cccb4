"""What the UI's pages show of a pipeline run: the pipeline's own page has the evaluation table, the NAS
leaderboard and a readable run summary that links to the reports; each stage task's page has its artifacts."""

from __future__ import annotations

import json
import re
from uuid import UUID
from typing import Any

import pytest


@pytest.fixture(scope="module")
def pipeline_artifacts(first_run: Any, api: Any) -> dict[str, Any]:
    """The artifacts of the pipeline's run and its subflows, newest per (key, flow run)."""
    state, _ = first_run
    return {"run": state.state_details.flow_run_id, "all": api.artifacts(state.state_details.flow_run_id),
            "tasks": {run.id: run for run in api.task_runs(state.state_details.flow_run_id)}}


def test_the_pipeline_run_page_has_the_evaluation_table_and_the_leaderboard(pipeline_artifacts: dict[str, Any]) -> None:
    own = {a.key: a for a in pipeline_artifacts["all"] if a.flow_run_id == pipeline_artifacts["run"]}
    assert {"ganaug-pipeline-evaluation", "ganaug-pipeline-nas-leaderboard", "ganaug-run-summary"} <= set(own)
    evaluation = json.loads(own["ganaug-pipeline-evaluation"].data)
    assert {row["protocol"] for row in evaluation} == {"real", "augmented"}
    leaderboard = json.loads(own["ganaug-pipeline-nas-leaderboard"].data)
    assert len(leaderboard) == 2 and all(" | " in row["architecture"] for row in leaderboard)


def test_stage_artifacts_are_on_their_task_runs(pipeline_artifacts: dict[str, Any]) -> None:
    tasks = pipeline_artifacts["tasks"]
    on_task = {}
    for artifact in pipeline_artifacts["all"]:
        if artifact.task_run_id is not None and artifact.key:
            on_task.setdefault(artifact.key, set()).add(tasks[artifact.task_run_id].name.split("-")[0])
    assert on_task["ganaug-dataset"] == {"ingest"}
    assert on_task["ganaug-gan-metrics"] == {"train_gan"} and on_task["ganaug-gan-progress"] == {"train_gan"}
    assert on_task["ganaug-gan-samples"] == {"train_gan"}  # the final grid too, not only those during training
    assert on_task["ganaug-synthetic"] == {"generate"}
    assert on_task["ganaug-evaluation"] == on_task["ganaug-evaluation-report"] == {"evaluation_report"}


def test_the_run_summary_links_the_reports_and_fits_the_page(pipeline_artifacts: dict[str, Any],
                                                             first_run: Any) -> None:
    by_id = {artifact.id: artifact for artifact in pipeline_artifacts["all"]}
    (summary,) = [a for a in pipeline_artifacts["all"] if a.key == "ganaug-run-summary"]
    result = first_run[0].result()
    links = dict(re.findall(r"\[([^\]]+)\]\(\.\./\.\./artifacts/artifact/([0-9a-f-]+)\)", summary.data))
    assert {text: by_id[UUID(target)].key for text, target in links.items()} == {
        result.report_path: "ganaug-evaluation-report", result.nas_report_path: "ganaug-nas-report"}
    prose = re.sub(r"```.*?```", "", summary.data, flags=re.S)  # fenced blocks keep their line breaks
    longest = max((word for word in re.split(r"\s+", re.sub(r"\]\([^)]*\)", "]", prose)) if word), key=len)
    assert len(longest) <= 100, longest  # no unbreakable run of text (the architecture JSON was one)
    fenced = re.search(r"```json\n(.*?)\n```", summary.data, flags=re.S)
    assert fenced is not None and json.loads(fenced.group(1)) == json.loads(result.best_arch)
    from ganaug.nas.report import arch_summary

    assert f"`{arch_summary(result.best_arch)}`" in summary.data  # the architecture in one readable line
