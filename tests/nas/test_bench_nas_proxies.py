"""bench/nas_proxies.py runs end to end on tiny data in worker processes and honours its deadline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from nas_helpers import write_tiny_dataset, write_tiny_synthetic

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def bench_module():
    sys.path.insert(0, str(BENCH))  # spawned workers import the module by name, with the parent's sys.path
    try:
        import nas_proxies

        yield nas_proxies
    finally:
        sys.path.remove(str(BENCH))


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "nas_proxies.jsonl").read_text().splitlines()]


def test_tiny_benchmark_writes_proxies_searches_and_baselines(tmp_path: Path, bench_module) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    synthetic = write_tiny_synthetic(tmp_path, per_class=10)
    out = tmp_path / "out"
    bench_module.main(["--dataset", dataset.path, "--synthetic", synthetic.path, "--out", str(out), "--archs", "3",
                       "--steps", "6", "--seeds", "2", "--trials", "2", "--strategies", "evolution", "random",
                       "--population", "2", "--parallel", "1", "--proxies", "real:all:3", "real:4:3", "confident:4:3",
                       "--workers", "1", "--device", "cpu", "--zero-cost-batch", "16"])
    lines = _lines(out)
    kinds = [line["kind"] for line in lines]
    assert kinds[0] == "config" and kinds[-1] == "summary" and not any("error" in line for line in lines)
    assert {"full", "proxy", "zero_cost", "reference", "search"} <= set(kinds)
    summary = lines[-1]
    assert summary["proxies"]["archs"] == 3
    names = {p["name"] for p in summary["proxies"]["proxies"]}
    assert names == {"real all/class x 3 steps", "real 4/class x 3 steps", "gan-confident 4/class x 3 steps",
                     "synflow", "naswot", "grad_norm", "params", "flops"}
    searches = [line for line in lines if line["kind"] == "search"]
    assert sorted((s["strategy"], s["seed"]) for s in searches) == [("evolution", 0), ("evolution", 1), ("random", 0), ("random", 1)]
    assert all(s["trials_done"] == 2 and 0.0 <= s["best_test"] <= 1.0 for s in searches)
    assert all(len(v) == 2 for v in summary["baselines"].values()) and set(summary["baselines"]) == {
        "default", "default_affine", "reference", "reference_affine"}
    report = (out / "nas_proxies.md").read_text()
    assert "## Proxies against full-fidelity val accuracy (3 architectures" in report and "| params |" in report
    assert "| evolution | 2 | 2 |" in report and "| random | 2 | 2 |" in report


def test_deadline_writes_what_it_has_and_returns(tmp_path: Path, bench_module) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    out = tmp_path / "out"
    bench_module.main(["--dataset", dataset.path, "--out", str(out), "--archs", "3", "--steps", "6", "--seeds", "1",
                       "--trials", "2", "--workers", "1", "--device", "cpu", "--deadline", "0", "--proxies", "real:all:3"])
    summary = _lines(out)[-1]
    assert summary["kind"] == "summary" and summary["deadline_reached"]
    assert all(s["trials_done"] == 0 for s in summary["searches"])
    assert "(deadline reached)" in (out / "nas_proxies.md").read_text()


@pytest.mark.parametrize(("args", "message"), [(["--proxies", "real:x:3"], "SOURCE:PER_CLASS:STEPS"),
                                               (["--archs", "0"], "--archs must be at least 1")])
def test_bad_arguments_exit_2(tmp_path: Path, bench_module, args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_module.parse_args(["--dataset", str(tmp_path / "d.parquet"), *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_proxy_larger_than_a_class_stops_before_training(tmp_path: Path, bench_module, capsys) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    with pytest.raises(SystemExit) as exit_info:
        bench_module.main(["--dataset", dataset.path, "--out", str(tmp_path / "out"), "--proxies", "real:20:100"])
    assert exit_info.value.code == 2
    assert "--proxies real:20:100: the real training data has only 16 images" in capsys.readouterr().err
    assert not (tmp_path / "out" / "nas_proxies.jsonl").exists()
