"""Retries cover transient I/O only: bad input and divergence fail at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
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
