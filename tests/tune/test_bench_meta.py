"""bench/meta.py --report: the issue's goal over saved held-out rows (counted, not eyeballed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tunehelpers import bench_script


@pytest.fixture
def meta() -> Iterator[ModuleType]:
    with bench_script("meta") as module:
        yield module


def study(utilities: list[float | None], reached: int | None, seconds: float | None) -> dict[str, Any]:
    return {"best_utility": max(u for u in utilities if u is not None), "utilities": utilities,
            "reached": {"trials": reached, "seconds": seconds}}


def seed_row(seed: int, cold: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    return {"seed": seed, "budget": {"trials": 9, "min_steps": 375, "max_steps": 3000, "device": "cuda"}, "cold": cold, "warm": warm}


ROWS = [
    # warm reaches cold's best (0.60, its 3rd trial) at its 1st: within a third
    seed_row(0, study([0.2, 0.3, 0.6], 3, 300.0), study([0.65, 0.4, 0.5], 1, 100.0)),
    # at its 2nd of cold's 5: reached, but not within a third (it would be within a half)
    seed_row(1, study([0.5, 0.1, 0.3, 0.2, 0.7], 5, 300.0), study([0.4, 0.7, 0.3], 2, 150.0)),
    # never: a miss counts as 10 trials
    seed_row(2, study([0.1] * 8 + [0.8], 9, 900.0), study([0.5] * 9, None, None)),
]


def test_goal_counts_seeds_within_a_third_and_misses_as_one_trial_more(meta: ModuleType) -> None:
    lines = meta.goal_summary(ROWS)
    assert "met in 1 of 3 seeds" in lines[0]
    assert "warm 4.3 vs cold 5.7" in lines[1] and "1 misses" in lines[1]  # (1 + 2 + 10) / 3 vs (3 + 5 + 9) / 3
    assert "mean 0.42 (range 0.33-0.50" in lines[2]  # 100/300 and 150/300; the miss has no ratio
    assert "2 of 3" in lines[3]  # 0.65 > 0.2 and 0.5 > 0.1, not 0.4 > 0.5
    assert "mean -0.0833, 95% CI [" in lines[4]  # (+0.05 + 0.0 - 0.3) / 3


def test_report_prints_each_files_table_and_the_goal_over_all_of_them(meta: ModuleType, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"held_out": ROWS[:2]}))
    (tmp_path / "b.json").write_text(json.dumps({"round": 9, "held_out": ROWS[2:]}))
    monkeypatch.setattr(sys, "argv", ["meta.py", "--report", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    meta.main()
    out = capsys.readouterr().out
    assert "a.json: 9 trials per study, rungs 375..3000 GAN steps, device cuda" in out
    assert "| 2 | 0.8000 | 9 / 900.0 | 0.5000 | not reached |" in out
    assert "over 3 seeds of 2 file(s):" in out and "met in 1 of 3 seeds" in out


@pytest.mark.parametrize("content", ["{not json", json.dumps({"suite": "fashion", "held_out": []}), json.dumps([1, 2])])
def test_report_refuses_a_file_without_held_out_rows_naming_it(meta: ModuleType, tmp_path: Path, content: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    monkeypatch.setattr(sys, "argv", ["meta.py", "--report", str(path)])
    with pytest.raises(SystemExit, match="--report .*bad.json"):
        meta.main()
