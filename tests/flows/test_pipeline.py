"""The pipeline flow end to end: stages, artifacts on disk and in the UI, caching, resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from ganaug.store import SYNTHETIC_SCHEMA, read_dataset


def test_pipeline_completes_and_its_artifacts_validate(first_run: Any) -> None:
    state, cfg = first_run
    assert state.is_completed(), state.message
    summary = state.result()
    run_dir = Path(summary.run_dir)
    assert run_dir.name == "first"
    dataset = read_dataset(run_dir / "dataset.parquet")
    assert len(dataset.labels) == summary.dataset_rows
    assert (dataset.splits == "train").sum() == 12 * 10
    synthetic = read_dataset(run_dir / "synthetic.parquet", SYNTHETIC_SCHEMA)
    assert len(synthetic.labels) == summary.synthetic_rows == 12 * 10 and set(synthetic.sources) == {"synthetic"}
    evaluation = pq.read_table(run_dir / "evaluation.parquet").to_pylist()
    assert Counter(row["protocol"] for row in evaluation) == {"real": 2, "augmented": 2}
    trials = pq.read_table(run_dir / "nas" / "trials.parquet").to_pylist()
    assert sum(row["role"] == "search" for row in trials) == 2
    assert json.loads((run_dir / "nas" / "best.json").read_text())
    assert (run_dir / "gan" / "checkpoints" / "last.pt").is_file() and summary.gan_steps == 6
    manifest = json.loads((run_dir / "run.json").read_text())
    assert {name: entry["status"] for name, entry in manifest["stages"].items()} == dict.fromkeys(
        ("ingest", "train_gan", "generate", "evaluate", "search"), "completed"
    )
    assert summary.stages["ingest"] == "ran" and summary.stages["train_gan"] == "ran"


def test_stages_and_artifacts_are_recorded_for_the_ui(first_run: Any, api: Any) -> None:
    state, _ = first_run
    flow_run_id = state.state_details.flow_run_id
    runs = [run.name for run in api.task_runs(flow_run_id)]
    trials = [name for name in runs if name.startswith("nas_")]
    assert all(" | " in name for name in trials)  # each NAS task run names the architecture it trains
    assert len(set(trials)) == len(trials) == 4  # and which trial or final test it is: no two share a name
    assert {name.split(":")[0] for name in trials} == {"nas_trial 0", "nas_trial 1", "nas_final_test real",
                                                      "nas_final_test augmented"}
    names = Counter(name.split()[0] if name.startswith("nas_") else name.split("-")[0] for name in runs)
    assert names == {"ingest": 1, "train_gan": 1, "generate": 1, "evaluation_report": 1,
                     "real seed 0": 1, "real seed 1": 1, "augmented x1 seed 0": 1, "augmented x1 seed 1": 1,
                     "nas_trial": 2, "nas_final_test": 2}
    by_key = {artifact.key: artifact for artifact in api.artifacts(flow_run_id) if artifact.key}
    assert {"ganaug-dataset", "ganaug-gan-progress", "ganaug-gan-metrics", "ganaug-gan-samples", "ganaug-synthetic",
            "ganaug-evaluation", "ganaug-evaluation-report", "ganaug-nas-leaderboard", "ganaug-nas-progress",
            "ganaug-run-summary"} <= set(by_key)
    assert by_key["ganaug-gan-progress"].data == 100.0
    assert by_key["ganaug-nas-progress"].data == 100.0
    assert "data:image/png;base64," in by_key["ganaug-gan-samples"].data
    dataset_rows = json.loads(by_key["ganaug-dataset"].data)
    assert dataset_rows[-1]["class"] == "all" and dataset_rows[-1]["train"] == 120
    evaluation_rows = json.loads(by_key["ganaug-evaluation"].data)
    augmented = next(row for row in evaluation_rows if row["protocol"] == "augmented")
    assert augmented["vs_real_ci_low"] <= augmented["vs_real_mean"] <= augmented["vs_real_ci_high"]
    assert len(json.loads(by_key["ganaug-nas-leaderboard"].data)) == 2


def test_second_run_reuses_every_stage_from_the_cache(first_run: Any, tiny_root: Path, api: Any, tiny_config: Any) -> None:
    from flows import pipeline

    first_state, _ = first_run
    state = pipeline(tiny_config(tiny_root, run_id="second"), return_state=True)
    assert state.is_completed(), state.message
    summary = state.result()
    runs = api.task_runs(state.state_details.flow_run_id)
    assert len(runs) == 4 + 4 + 4  # stage tasks, protocol runs, NAS tasks
    assert {run.state.name for run in runs} == {"Cached"}
    assert summary.stages == {
        "ingest": "cached", "train_gan": "cached", "generate": "cached",
        "evaluate": "cached (4/4 tasks cached)", "search": "cached (4/4 tasks cached)",
    }
    assert summary.evaluation == first_state.result().evaluation
    manifest = json.loads((tiny_root / "runs" / "second" / "run.json").read_text())
    gan_entry = manifest["stages"]["train_gan"]
    assert gan_entry["notes"]["cached"] is True
    # the cached files are linked into the new run folder, which stands alone
    assert gan_entry["outputs"]["checkpoint"]["path"].endswith("second/gan/checkpoints/last.pt")
    second, first = tiny_root / "runs" / "second", tiny_root / "runs" / "first"
    for name in ("dataset.parquet", "synthetic.parquet", "evaluation.parquet", "gan/checkpoints/last.pt",
                 "gan/checkpoints/best.pt", "gan/metrics.parquet"):
        assert (second / name).is_file() and not (second / name).is_symlink(), name
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    assert (second / "report.md").read_text().startswith("# ganaug report: second")
    for stage in ("ingest", "generate", "evaluate"):
        assert str(second) in json.dumps(manifest["stages"][stage]["outputs"]), stage
        assert str(first) not in json.dumps(manifest["stages"][stage]["outputs"]), stage
    assert summary.report_path == str(second / "report.md")
    from typer.testing import CliRunner

    from ganaug.cli import app

    alone = CliRunner().invoke(app, ["evaluate", "--run-dir", str(second), "--protocols", "real,augmented", "--seeds", "1",
                                     "--steps", "5", "--device", "cpu", "--no-generative-metrics"])
    assert alone.exit_code == 0, alone.output


def test_refresh_reruns_only_the_named_stage(first_run: Any, tiny_root: Path, tiny_config: Any) -> None:
    from flows import ingest_flow

    cfg = tiny_config(tiny_root, run_id="refresh", refresh=["ingest"])
    state = ingest_flow(cfg.ingest, cfg.orchestration, return_state=True)
    assert state.is_completed()
    manifest = json.loads((tiny_root / "runs" / "refresh" / "run.json").read_text())
    assert "cached" not in manifest["stages"]["ingest"].get("notes", {})
    first_dataset = read_dataset(Path(first_run[0].result().run_dir) / "dataset.parquet")
    assert state.result().content_hash == first_dataset.content_hash  # same input, same content
    assert state.result().path.endswith("refresh/dataset.parquet")


def test_cached_result_whose_files_are_gone_is_recomputed(tmp_path: Path, tiny_config: Any) -> None:
    from flows import ingest_flow

    cfg = tiny_config(tmp_path)
    ingest = cfg.ingest.model_copy(update={"seed": 5})
    first = ingest_flow(ingest, cfg.orchestration.model_copy(update={"run_id": "a"}))
    second = ingest_flow(ingest, cfg.orchestration.model_copy(update={"run_id": "b"}))
    # a cache hit hands back the first run's dataset, linked into the second run folder
    assert second.content_hash == first.content_hash and second.path.endswith("b/dataset.parquet")
    Path(first.path).unlink()
    third = ingest_flow(ingest, cfg.orchestration.model_copy(update={"run_id": "c"}))
    assert third.path.endswith("c/dataset.parquet") and Path(third.path).is_file()
    assert third.content_hash == first.content_hash


def test_interrupted_gan_training_resumes_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_config: Any
) -> None:
    import ganaug.gan
    from flows import ingest_flow, train_gan_flow

    cfg = tiny_config(tmp_path)
    gan_cfg = cfg.gan.model_copy(update={"steps": 8, "checkpoint_every": 4, "seed": 3})
    dataset = ingest_flow(cfg.ingest, cfg.orchestration.model_copy(update={"run_id": "data"}))
    real_train_gan = ganaug.gan.train_gan  # what the stage runner calls

    class Crash:
        def on_checkpoint(self, step: int, path: Path) -> None:
            if step == 4:
                raise KeyboardInterrupt  # the pipeline is stopped after the step-4 checkpoint

    def interrupted(*args: Any, callbacks: Any = None, **kwargs: Any) -> Any:
        return real_train_gan(*args, callbacks=[*callbacks, Crash()], **kwargs)

    monkeypatch.setattr(ganaug.gan, "train_gan", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_gan_flow(gan_cfg, cfg.orchestration.model_copy(update={"run_id": "stopped"}), dataset)
    monkeypatch.setattr(ganaug.gan, "train_gan", real_train_gan)
    assert (tmp_path / "runs" / "stopped" / "gan" / "checkpoints" / "last.pt").is_file()
    stopped = json.loads((tmp_path / "runs" / "stopped" / "run.json").read_text())
    assert stopped["stages"]["train_gan"]["status"] == "interrupted"

    result = train_gan_flow(gan_cfg, cfg.orchestration.model_copy(update={"run_id": "rerun"}), dataset)
    assert result.resumed_from == 4 and result.steps == 8
    assert result.checkpoint_path.endswith("rerun/gan/checkpoints/last.pt")
    assert not list((tmp_path / "cache" / "in-flight").glob("*.json"))


def test_gan_stage_learns_its_schedule_from_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_config: Any
) -> None:
    """gan.schedule 'learned' in a flow: rates learned from the history when the training starts, recorded as trained."""
    from flows import ingest_flow, train_gan_flow
    from ganaug.errors import DataError
    from ganaug.gan import GanConfig
    from ganaug.gan.checkpoint import read_checkpoint_with_fallback
    from ganaug.tune.history import HISTORY_ENV, append_record, dataset_features, make_record

    cfg = tiny_config(tmp_path)
    history = tmp_path / "history.parquet"
    monkeypatch.setenv(HISTORY_ENV, str(history))
    dataset = ingest_flow(cfg.ingest, cfg.orchestration.model_copy(update={"run_id": "data"}))
    gan_cfg = cfg.gan.model_copy(update={"schedule": "learned", "seed": 2})
    with pytest.raises(DataError, match=f"run history {history} does not exist"):
        train_gan_flow(gan_cfg, cfg.orchestration.model_copy(update={"run_id": "empty"}), dataset)
    assert not (tmp_path / "runs" / "empty" / "gan").exists()
    past = GanConfig(g_lr=6e-4, d_lr=2.4e-3, lr_schedule="exponential", lr_decay_rate=1.0)  # 3x the default rates
    append_record(history, make_record(dataset_features(read_dataset(dataset.path)), past, [], origin="tune", steps=6,
                                       seconds=1.0, device="cpu", cas_val=0.9, study="s", trial=0))
    result = train_gan_flow(gan_cfg, cfg.orchestration.model_copy(update={"run_id": "learned"}), dataset)
    trained, _ = read_checkpoint_with_fallback(result.checkpoint_path)
    schedule = {k: trained["config"][k] for k in ("schedule", "lr_schedule", "g_lr", "d_lr")}
    assert schedule["schedule"] == "learned" and schedule["lr_schedule"] == "exponential"
    assert 2e-4 < schedule["g_lr"] < 6e-4 and schedule["d_lr"] == pytest.approx(4 * schedule["g_lr"])
    recorded = json.loads((tmp_path / "runs" / "learned" / "run.json").read_text())["config"]["train_gan"]
    assert {k: recorded[k] for k in schedule} == schedule
