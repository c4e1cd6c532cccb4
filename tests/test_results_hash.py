"""run.json's results hashes: equal between identical runs in different run folders, changed by any result."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ganaug.config import IngestConfig
from ganaug.evaluate import EvaluateConfig
from ganaug.nas import SearchConfig
from ganaug.runner import report_results_hash, run_evaluate, run_ingest, run_search, table_results_hash
from ganaug.runs import RunFolder

EVALUATE = EvaluateConfig(protocols=["real"], seeds=1, generative_metrics=False,
                          train={"steps": 10, "batch_size": 32, "device": "cpu"},
                          arch={"blocks": [{"channels": 4}], "head_width": 0})
SEARCH = SearchConfig(strategy="random", n_trials=2, parallel=1, steps=5, final_steps=5, storage="memory", train_data="real",
                      space={"max_blocks": 1, "channels": [4, 8], "head_widths": [0], "kernels": [3]})


def _outputs(root: Path, run_id: str) -> dict[str, dict]:
    run = RunFolder.create(root, run_id)
    run_ingest(run, IngestConfig(train_per_class=8))
    run_evaluate(run, EVALUATE)
    run_search(run, SEARCH)
    stages = run.read_manifest()["stages"]
    return {key: ref for stage in ("evaluate", "search") for key, ref in stages[stage]["outputs"].items()}


def test_identical_runs_have_equal_results_hashes_and_another_seed_does_not(tmp_path: Path) -> None:
    first, second = _outputs(tmp_path, "first"), _outputs(tmp_path, "second")
    for key in ("evaluation", "report", "trials"):
        assert first[key]["results_hash"] == second[key]["results_hash"], key
    evaluation = pd.read_parquet(first["evaluation"]["path"])
    assert evaluation["seconds"].gt(0).all()  # timings are there, and left out of the hash
    assert first["evaluation"]["results_hash"] != first["trials"]["results_hash"]
    assert "results_hash" not in first["best"]


def test_a_changed_result_value_changes_the_table_hash(tmp_path: Path) -> None:
    table = pd.DataFrame({"protocol": ["real", "classic"], "accuracy": [0.5, 0.75], "seconds": [1.0, 2.0]})
    table.to_parquet(tmp_path / "a.parquet")
    table.assign(seconds=[3.0, 4.0]).to_parquet(tmp_path / "b.parquet")
    table.assign(accuracy=[0.5, 0.7500001]).to_parquet(tmp_path / "c.parquet")
    hashes = [table_results_hash(tmp_path / f"{name}.parquet") for name in "abc"]
    assert hashes[0] == hashes[1] != hashes[2]


def test_the_report_hash_leaves_out_only_the_title(tmp_path: Path) -> None:
    texts = {"a": "# ganaug report: a\n\n| real | 0.5 |\n", "b": "# ganaug report: b\n\n| real | 0.5 |\n",
             "c": "# ganaug report: a\n\n| real | 0.6 |\n"}
    for name, text in texts.items():
        (tmp_path / f"{name}.md").write_text(text)
    hashes = [report_results_hash(tmp_path / f"{name}.md") for name in "abc"]
    assert hashes[0] == hashes[1] != hashes[2]
