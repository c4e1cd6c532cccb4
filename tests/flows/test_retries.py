"""Retries cover transient I/O only: bad input and divergence fail at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import TINY_CONFIG
from prefect.states import Failed

from ganaug.errors import DataError, DivergenceError


def test_transient_io_error_is_retried_as_configured(tmp_path: Path, tiny_config: Any, api: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import ganaug.data.ingest
    from flows import ingest_flow

    real_ingest = ganaug.data.ingest.ingest
    calls: list[int] = []

    def flaky(cfg: Any, out: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("simulated: network file system briefly unavailable")
        return real_ingest(cfg, out)

    monkeypatch.setattr(ganaug.data.ingest, "ingest", flaky)
    cfg = tiny_config(tmp_path, run_id="flaky", retries=1)
    state = ingest_flow(cfg.ingest, cfg.orchestration, return_state=True)
    assert state.is_completed() and len(calls) == 2
    (task_run,) = api.task_runs(state.state_details.flow_run_id)
    assert task_run.run_count == 2 and task_run.state.name == "Completed"
    assert Path(state.result().path).is_file()


def test_bad_input_is_not_retried_and_leaves_no_run_folder(tmp_path: Path, tiny_config: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import ganaug.data.ingest
    from flows import ingest_flow

    calls: list[int] = []

    def broken(cfg: Any, out: Any) -> Any:
        calls.append(1)
        raise DataError("data/x.npz: column 'y' is missing")

    monkeypatch.setattr(ganaug.data.ingest, "ingest", broken)
    cfg = tiny_config(tmp_path, run_id="broken", retries=3)
    state = ingest_flow(cfg.ingest, cfg.orchestration, return_state=True)
    assert state.is_failed() and len(calls) == 1
    with pytest.raises(DataError, match="column 'y' is missing"):
        state.result()
    assert not (tmp_path / "runs" / "broken").exists()


@pytest.mark.parametrize(
    ("error", "retried"),
    [(OSError("disk busy"), True), (TimeoutError("slow mount"), True),
     (DivergenceError("non-finite d_loss"), False), (DataError("bad column"), False), (ValueError("bug"), False)],
)
def test_retry_condition_only_accepts_transient_errors(error: Exception, retried: bool) -> None:
    from flows.tasks import transient_only

    assert transient_only(None, None, Failed(data=error)) is retried  # type: ignore[arg-type]


# Fanned-out units and flows: a transient fault (`ganaug.faults`, an EIO raised at a named point) is retried as the
# orchestration settings say; the retried run ends as an uninterrupted one.

@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory, tiny_config: Any) -> Any:
    """A tiny ingested dataset (no GAN: the real-data protocols and searches need none)."""
    from flows import ingest_flow

    cfg = tiny_config(tmp_path_factory.mktemp("digits"), run_id="digits")
    return ingest_flow(cfg.ingest, cfg.orchestration)


def _settings(tmp_path: Path, run_id: str, retries: int) -> Any:
    from ganaug.pipeline import OrchestrationConfig

    return OrchestrationConfig(runs_root=tmp_path / "runs", cache_dir=tmp_path / "cache", run_id=run_id,
                               retries=retries, retry_delay_seconds=0)


def _real_only_evaluation() -> Any:
    from ganaug.evaluate import EvaluateConfig

    return EvaluateConfig.model_validate({**TINY_CONFIG["evaluate"], "protocols": ["real"]})


def _flow_run(api: Any, state: Any) -> Any:
    return api.client.read_flow_run(state.state_details.flow_run_id)


def test_a_protocol_run_is_retried_after_a_transient_error(tmp_path: Path, digits: Any, api: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import evaluate_flow
    from ganaug.faults import ENV

    monkeypatch.setenv(ENV, "protocol_run:started=EIO")  # the first protocol run's first try fails inside its task
    state = evaluate_flow(_real_only_evaluation(), _settings(tmp_path, "eval", retries=1), dataset=digits,
                          return_state=True)
    assert state.is_completed(), state.message
    runs = sorted(run.run_count for run in api.task_runs(state.state_details.flow_run_id) if run.name.startswith("real"))
    assert runs == [1, 2] and _flow_run(api, state).run_count == 1
    assert len(pq.read_table(tmp_path / "runs" / "eval" / "evaluation.parquet")) == 2


def test_a_nas_trial_is_retried_after_a_transient_error(tmp_path: Path, digits: Any, api: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import search_flow
    from ganaug.faults import ENV
    from ganaug.nas.config import SearchConfig

    monkeypatch.setenv(ENV, "nas_trial:started=EIO")
    config = SearchConfig.model_validate({**TINY_CONFIG["search"], "train_data": "real"})
    state = search_flow(config, _settings(tmp_path, "search", retries=1), dataset=digits, return_state=True)
    assert state.is_completed(), state.message
    trials = [run for run in api.task_runs(state.state_details.flow_run_id) if run.name.startswith("nas_trial")]
    assert sorted(run.run_count for run in trials) == [1, 2]
    rows = pq.read_table(tmp_path / "runs" / "search" / "nas" / "trials.parquet").to_pylist()
    assert [row["state"] for row in rows if row["role"] == "search"] == ["complete", "complete"]  # none recorded failed


def test_a_flow_is_retried_after_a_transient_error_in_its_own_body(tmp_path: Path, digits: Any, api: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from flows import evaluate_flow
    from ganaug.faults import ENV

    monkeypatch.setenv(ENV, "protocol_run=EIO")  # raised in the flow as it collects the first unit's result
    state = evaluate_flow(_real_only_evaluation(), _settings(tmp_path, "flow", retries=1), dataset=digits,
                          return_state=True)
    assert state.is_completed(), state.message
    assert _flow_run(api, state).run_count == 2
    states = [run.state.name for run in api.task_runs(state.state_details.flow_run_id) if run.name.startswith("real")]
    assert sorted(states) == ["Cached", "Cached", "Completed", "Completed"]  # the retry reused the finished runs


@pytest.mark.parametrize("error", [DataError("data/x.npz: column 'y' is missing"), DivergenceError("non-finite d_loss")])
def test_a_flow_is_not_retried_after_bad_input_or_divergence(error: Exception, tmp_path: Path, digits: Any, api: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import flows.stages
    from flows import evaluate_flow

    calls: list[int] = []

    def broken(*args: Any) -> Any:
        calls.append(1)
        raise error

    monkeypatch.setattr(flows.stages, "prepare_evaluation", broken)
    state = evaluate_flow(_real_only_evaluation(), _settings(tmp_path, "bad", retries=3), dataset=digits,
                          return_state=True)
    assert state.is_failed() and len(calls) == 1 and _flow_run(api, state).run_count == 1


def test_a_subflow_error_retried_to_the_limit_is_not_retried_again_by_its_parent(api: Any) -> None:
    from prefect import flow

    from flows.retries import transient_retries
    from ganaug.pipeline import OrchestrationConfig

    settings, tries = OrchestrationConfig(retries=2, retry_delay_seconds=0), []

    @flow
    def stage() -> None:
        with transient_retries(settings):
            tries.append("stage")
            raise TimeoutError("the file server does not answer")

    @flow
    def outer() -> None:
        with transient_retries(settings):
            tries.append("outer")
            stage()

    state = outer(return_state=True)
    assert state.is_failed() and tries == ["outer", "stage", "stage", "stage"]
