"""bench/pruners.py: seeds split over processes (--first-seed) and their rows merged give one table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tunehelpers import bench_script, make_dataset


@pytest.fixture()
def bench_module():
    with bench_script("pruners") as module:
        yield module


def _fake_study(calls: list[tuple[str, int]]):
    def study(dataset: Path, pruner: str, seed: int, args) -> dict:
        calls.append((pruner, seed))
        best = 0.1 * (seed + 1) + {"successive_halving": 0.0, "hyperband": 0.01, "none": 0.02}[pruner]
        steps = {"successive_halving": 50, "hyperband": 75, "none": 100}[pruner]
        return {"pruner": pruner, "seed": seed, "seconds": float(steps), "gan_steps": steps, "gan_steps_unpruned": 100,
                "best": best, "best_at_trial": 1, "complete": 1, "pruned": 0, "failed": 0, "mean_complete": best,
                "utilities": [best], "states": ["complete"]}
    return study


def test_first_seed_runs_only_its_seeds_and_merged_rows_give_the_table(tmp_path: Path, bench_module, monkeypatch, capsys) -> None:
    dataset = make_dataset(tmp_path / "dataset.parquet")
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(bench_module, "study", _fake_study(calls))
    for seed in (0, 1):
        bench_module.main(["--dataset", dataset.path, "--out", str(tmp_path / f"s{seed}"), "--seeds", "1", "--first-seed", str(seed)])
    assert calls == [(p, s) for s in (0, 1) for p in bench_module.PRUNERS]
    assert {json.loads(line)["seed"] for line in (tmp_path / "s1" / "pruners.jsonl").read_text().splitlines()} == {1}

    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "pruners.jsonl").write_text((tmp_path / "s0" / "pruners.jsonl").read_text() + (tmp_path / "s1" / "pruners.jsonl").read_text())
    calls.clear()
    capsys.readouterr()
    bench_module.main(["--dataset", dataset.path, "--out", str(merged), "--seeds", "2"])
    assert calls == []  # every study of seeds 0-1 is in the rows: nothing runs again
    table = capsys.readouterr().out
    assert "| successive_halving | 0.100, 0.200 | 0.150 | 50 (0.50) |" in table
    assert "| hyperband | 0.110, 0.210 | 0.160 | 75 (0.75) |" in table


@pytest.mark.parametrize("option", [["--first-seed", "-1"], ["--seeds", "0"], ["--trials", "0"]])
def test_bad_counts_are_refused(bench_module, option: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_module.parse_args(option)
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err
