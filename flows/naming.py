"""Flow runs named after the run folder they write (`<runs_root>/<run id>`), not Prefect's random names.

Every flow here takes the run id in its parameters: `config.orchestration` (the pipeline) or `orchestration`
(a stage flow, or tuning). The flow name says which stage it is, so each run is named by the run id alone:
`pipeline > 20261207-204800-1a2b`, `evaluate > 20261207-204800-1a2b`. A flow started without a run id is
named by a new one when it starts, and its run folder gets that id: every log line of the run, Prefect's
own included, names the run by the id its folder has.
"""

from __future__ import annotations

from typing import Any

from ganaug.pipeline import OrchestrationConfig, open_pipeline_run
from ganaug.runs import RunFolder, new_run_id


def _run_id(parameters: dict[str, Any]) -> str | None:
    settings = parameters.get("orchestration")
    if settings is None:
        config = parameters.get("config")
        settings = config.get("orchestration") if isinstance(config, dict) else getattr(config, "orchestration", None)
    if isinstance(settings, dict):  # a deployment's parameters arrive as JSON
        return settings.get("run_id")
    return getattr(settings, "run_id", None)


def flow_run_name() -> str:
    """The `flow_run_name` of every ganaug flow: the run id from the flow run's parameters, or a new one."""
    from prefect.runtime import flow_run

    return _run_id(flow_run.parameters) or new_run_id()


def open_named_run(settings: OrchestrationConfig, must_exist: bool = False) -> RunFolder:
    """`open_pipeline_run`; a new run folder without a run id in `settings` takes the id the flow run is named by."""
    if settings.run_id is None and not must_exist:
        from prefect.runtime import flow_run

        name = flow_run.name
        if name and _valid_run_id(name):
            settings = settings.model_copy(update={"run_id": name})
    return open_pipeline_run(settings, must_exist)


def _valid_run_id(name: str) -> bool:
    try:
        OrchestrationConfig(run_id=name)
    except ValueError:
        return False
    return True
