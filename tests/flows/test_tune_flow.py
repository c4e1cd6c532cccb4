"""The tune_gan flow: trials as tasks on the flow's task runner, the same study as the library call."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ganaug.pipeline import OrchestrationConfig
from flows.tune import tune_flow
from ganaug.config import IngestConfig
from ganaug.data.ingest import ingest
from ganaug.tune.config import TuneConfig
from ganaug.tune.history import history_rows
from ganaug.tune.study import tune_gan

TINY_BASE = {"steps": 4, "batch_size": 8, "latent_dim": 8, "g_width": 16, "d_width": 8, "metrics_every": 2,
             "grid_every": None, "device": "cpu", "monitor_per_class": 8}


def test_tune_flow_runs_the_same_trials_as_the_library(tmp_path: Path) -> None:
    dataset = ingest(IngestConfig(source="digits", train_per_class=4), tmp_path / "runs" / "t1")
    cfg = TuneConfig(n_trials=4, parallel=2, min_steps=2, max_steps=4, synthetic_per_class=4, classifier_steps=10,
                     history=tmp_path / "history.parquet", base=TINY_BASE)
    settings = OrchestrationConfig(runs_root=str(tmp_path / "runs"), run_id="t1", cache_dir=str(tmp_path / "cache"))
    result = tune_flow(config=cfg, orchestration=settings, dataset=dataset)
    direct = tune_gan(dataset, cfg.model_copy(update={"history": tmp_path / "direct.parquet"}), tmp_path / "direct")
    columns = ["number", "state", "params", "rung_utility"]
    assert pq.read_table(result.trials_path).select(columns).to_pylist() == pq.read_table(direct.trials_path).select(columns).to_pylist()
    assert Path(result.best_config_path).is_file() and result.best_trial == direct.best_trial
    assert sorted(r["trial"] for r in history_rows(tmp_path / "history.parquet")) == [0, 1, 2, 3]  # in finishing order
