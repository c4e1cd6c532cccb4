"""Flow runs are named after the run folder they write: the pipeline's, its stage subflows', and a stage flow's
started without a run id (named by a new id from its start, which its run folder then takes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_the_pipeline_and_its_subflows_are_named_by_the_run_id(first_run: Any, api: Any) -> None:
    state, cfg = first_run
    flow_run_ids = api.flow_run_ids(state.state_details.flow_run_id)
    assert len(flow_run_ids) == 3  # the pipeline, evaluate and search
    names = {api.client.read_flow_run(flow_run_id).name for flow_run_id in flow_run_ids}
    assert names == {cfg.orchestration.run_id} == {"first"}


def test_a_stage_flow_without_a_run_id_is_named_by_the_id_it_makes(tmp_path: Path, api: Any) -> None:
    from flows import ingest_flow
    from ganaug.data.config import IngestConfig
    from ganaug.pipeline import OrchestrationConfig

    settings = OrchestrationConfig(runs_root=tmp_path / "runs", cache_dir=tmp_path / "cache")
    state = ingest_flow(IngestConfig(train_per_class=2), settings, return_state=True)
    (made,) = [folder.name for folder in (tmp_path / "runs").iterdir()]
    assert api.client.read_flow_run(state.state_details.flow_run_id).name == made
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    logs = api.client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    begun = [log.message for log in logs if log.message.startswith("Beginning flow run")]
    assert begun == [f"Beginning flow run '{made}' for flow 'ingest'"]  # Prefect's own lines name the run by its id too
