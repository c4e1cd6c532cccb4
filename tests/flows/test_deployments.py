"""Deployments applied to the test server and read back through Prefect's client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ganaug.pipeline import SMALL_BUDGET, PipelineConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _schedules(deployment: Any) -> list[tuple[str, str]]:
    return [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules]


def _serve_module() -> Any:
    sys.path.insert(0, str(PROJECT_ROOT / "deployments"))
    try:
        import serve
    finally:
        sys.path.remove(str(PROJECT_ROOT / "deployments"))
    return serve


def test_served_deployments_carry_the_cron_schedule_and_parameters(api: Any) -> None:
    for deployment in _serve_module().build_deployments(data_folder="data/new-images", cron="30 2 * * *"):
        deployment.apply()
    retrain = api.client.read_deployment_by_name("pipeline/ganaug-retrain")
    assert _schedules(retrain) == [("30 2 * * *", "UTC")]
    config = PipelineConfig.model_validate(retrain.parameters["config"])
    assert config.ingest.source == "folder" and str(config.ingest.path) == "data/new-images"
    assert config.gan.steps == SMALL_BUDGET["gan"]["steps"]
    on_demand = api.client.read_deployment_by_name("pipeline/ganaug-pipeline")
    assert on_demand.schedules == []
    for deployment in (retrain, on_demand):  # one flow run at a time; a run that comes due waits
        assert deployment.global_concurrency_limit.limit == 1
        assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert PipelineConfig.model_validate(on_demand.parameters["config"]).ingest.source == "digits"
    assert "config" in on_demand.parameter_openapi_schema["properties"]  # the UI's form


def test_prefect_yaml_deploys_to_a_process_pool_from_the_local_folder(api: Any) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL

    spec = yaml.safe_load((PROJECT_ROOT / "deployments" / "prefect.yaml").read_text())
    for entry in spec["deployments"]:  # the YAML copy of the budget matches the code's
        config = dict(entry["parameters"]["config"])
        ingest = config.pop("ingest", None)
        assert config == SMALL_BUDGET and ingest in (None, {"source": "folder", "path": "data/incoming"})
    api.client.create_work_pool(WorkPoolCreate(name="ganaug-local", type="process"), overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PWD": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    retrain = api.client.read_deployment_by_name("pipeline/ganaug-retrain")
    assert retrain.work_pool_name == "ganaug-local"
    assert _schedules(retrain) == [("0 3 * * 1", "UTC")]
    assert PipelineConfig.model_validate(retrain.parameters["config"]).ingest.path == Path("data/incoming")
    assert retrain.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}
    ]
    assert retrain.entrypoint == "flows/pipeline.py:pipeline"
    assert retrain.global_concurrency_limit.limit == 1 and retrain.concurrency_options.collision_strategy == "ENQUEUE"


def test_serve_refuses_to_replace_deployments_made_for_a_worker(api: Any, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect
    from prefect.client.schemas.actions import WorkPoolCreate

    serve = _serve_module()
    api.client.create_work_pool(WorkPoolCreate(name="ganaug-local", type="process"), overwrite=True)
    retrain, _ = serve.build_deployments()
    retrain.apply(work_pool_name="ganaug-local")  # as `prefect deploy` leaves it
    served: list[Any] = []
    monkeypatch.setattr(prefect, "serve", lambda *deployments, **kwargs: served.append(deployments))
    monkeypatch.chdir(tmp_path)  # serve.py changes into the project folder
    with pytest.raises(SystemExit, match=r"pipeline/ganaug-retrain \(work pool ganaug-local\).*--suffix=-served"):
        serve.main([])
    assert served == [] and api.client.read_deployment_by_name("pipeline/ganaug-retrain").work_pool_name == "ganaug-local"
    serve.main(["--suffix=-served"])
    assert [deployment.name for deployment in served[0]] == ["ganaug-retrain-served", "ganaug-pipeline-served"]


def test_serve_pauses_a_served_retraining_that_would_run_twice_at_the_same_hour(
        api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import prefect
    from prefect.client.schemas.actions import WorkPoolCreate

    serve = _serve_module()
    api.client.create_work_pool(WorkPoolCreate(name="ganaug-local", type="process"), overwrite=True)
    retrain, _ = serve.build_deployments()
    retrain.apply(work_pool_name="ganaug-local")  # the worker's retraining, as `prefect deploy` leaves it
    served: list[Any] = []
    monkeypatch.setattr(prefect, "serve", lambda *deployments, **kwargs: served.append(deployments))
    monkeypatch.chdir(tmp_path)
    serve.main(["--suffix=-served"])
    assert [entry.active for entry in served[0][0].schedules] == [False]
    assert ("pipeline/ganaug-retrain already runs on the schedule '0 3 * * 1' (UTC); pipeline/ganaug-retrain-served "
            "is registered with its schedule paused") in capsys.readouterr().err
    serve.main(["--suffix=-other", "--cron", "0 4 * * 1"])  # another hour: nothing to pause
    assert [entry.active for entry in served[1][0].schedules] == [True]
    serve.main(["--suffix=-served", "--duplicate-schedule"])  # asked for
    assert [entry.active for entry in served[2][0].schedules] == [True]
