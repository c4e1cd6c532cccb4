"""Flow runs named after the run folder they write (`<runs_root>/<run id>`), not Prefect's random names.

Every flow here takes the run id in its parameters: `config.orchestration` (the pipeline) or `orchestration`
(a stage flow, or tuning). The flow name says which stage it is, so each run is named by the run id alone:
`pipeline > 20261207-204800-1a2b`, `evaluate > 20261207-204800-1a2b`. A flow started without a run id makes
a new one when it opens the run folder and renames itself then.
"""

from __future__ import annotations

from typing import Any

from ganaug.pipeline import OrchestrationConfig, open_pipeline_run
from ganaug.runs import RunFolder

UNNAMED = "new run"  # the name until the flow has made its run id


def _run_id(parameters: dict[str, Any]) -> str | None:
    settings = parameters.get("orchestration")
    if settings is None:
        config = parameters.get("config")
        settings = config.get("orchestration") if isinstance(config, dict) else getattr(config, "orchestration", None)
    if isinstance(settings, dict):  # a deployment's parameters arrive as JSON
        return settings.get("run_id")
    return getattr(settings, "run_id", None)


def flow_run_name() -> str:
    """The `flow_run_name` of every ganaug flow: the run id from the flow run's parameters."""
    from prefect.runtime import flow_run

    return _run_id(flow_run.parameters) or UNNAMED


def open_named_run(settings: OrchestrationConfig, must_exist: bool = False) -> RunFolder:
    """`open_pipeline_run`, then the flow run renamed after the run id the run folder got, if none was given."""
    run = open_pipeline_run(settings, must_exist)
    if settings.run_id is None:
        from prefect import get_client
        from prefect.runtime import flow_run

        if flow_run.id is not None:
            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run.id, name=run.run_id)
    return run
