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


def _proxy_search(bench_module, tmp_path: Path, out: Path, seeds: tuple[str, ...] = ("--seeds", "2")) -> list[dict]:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    synthetic = write_tiny_synthetic(tmp_path, per_class=10)
    bench_module.main(["--dataset", dataset.path, "--synthetic", synthetic.path, "--out", str(out), "--archs", "0",
                       "--steps", "6", *seeds, "--trials", "3", "--strategies", "evolution", "random",
                       "--first-strategies", "evolution", "--concurrent-seeds", "1", "--population", "2", "--parallel", "1",
                       "--search-fidelity", "synthetic:4:3", "--verify-top", "2", "--workers", "1", "--device", "cpu"])
    return _lines(out)


def test_proxy_fidelity_search_retrains_its_top_k_at_full_fidelity(tmp_path: Path, bench_module) -> None:
    lines = _proxy_search(bench_module, tmp_path, tmp_path / "out")
    assert not any("error" in line for line in lines)
    kinds = {line["kind"] for line in lines}
    assert {"search_proxy", "full", "reference", "search"} <= kinds and "proxy" not in kinds and "zero_cost" not in kinds
    trials = [line for line in lines if line["kind"] == "search_proxy"]
    assert trials and all(t["steps_run"] == 3 and t["test"] is None and t["proxy"] == "gan 4/class x 3 steps" for t in trials)
    searches = [line for line in lines if line["kind"] == "search"]
    # --first-strategies evolution, one seed at a time: evolution's searches finish before random's
    assert [(s["strategy"], s["seed"]) for s in searches] == [("evolution", 0), ("evolution", 1), ("random", 0), ("random", 1)]
    full = {(line["arch"], line["augment"], line["seed"]): line for line in lines if line["kind"] == "full"}
    for s in searches:
        assert s["trials_done"] == 3 and s["retrained"] == 2 and s["best_proxy_val"] == max(s["best_so_far"])
        assert s["best_val"] == max(s["retrained_val"]) and 1 <= s["found_proxy_rank"] <= 2
        found = full[(s["best_arch"], s["best_augment"], s["seed"])]  # the found architecture's own full-fidelity training
        assert found["steps_run"] == 6 and (found["val"], found["test"]) == (s["best_val"], s["best_test"])
        assert s["retrain_seconds"] > 0 and s["search_seconds"] > 0
    report = (tmp_path / "out" / "nas_proxies.md").read_text()
    assert "## Proxies: not run (--archs 0)" in report and "proxy **gan 4/class x 3 steps**" in report
    assert "| evolution | 2 | 3 | 2 |" in report and "| random | 2 | 3 | 2 |" in report
    assert "Mean best proxy val accuracy after k trials" in report


def test_proxy_fidelity_search_is_deterministic(tmp_path: Path, bench_module) -> None:
    keys = ("strategy", "seed", "best_so_far", "best_proxy_val", "best_arch", "best_augment", "best_val", "best_test")
    runs = [[{k: s[k] for k in keys} for s in _proxy_search(bench_module, tmp_path, tmp_path / name) if s["kind"] == "search"]
            for name in ("a", "b")]
    assert runs[0] == runs[1]


def test_runs_of_other_seeds_combine_into_the_tables_of_one_run(tmp_path: Path, bench_module, capsys) -> None:
    keys = ("best_so_far", "best_arch", "best_augment", "best_val", "best_test")
    whole = _proxy_search(bench_module, tmp_path, tmp_path / "whole")
    first = _proxy_search(bench_module, tmp_path, tmp_path / "first", ("--seeds", "1"))
    second = _proxy_search(bench_module, tmp_path, tmp_path / "second", ("--seeds", "1", "--first-seed", "1"))

    def searches(lines: list[dict]) -> dict:
        return {(s["strategy"], s["seed"]): {k: s[k] for k in keys} for s in lines if s["kind"] == "search"}

    assert set(searches(second)) == {("evolution", 1), ("random", 1)}  # --first-seed 1: only seed 1
    assert searches(whole) == {**searches(first), **searches(second)}
    bench_module.main(["--combine", str(tmp_path / "first" / "nas_proxies.jsonl"), str(tmp_path / "second" / "nas_proxies.jsonl"),
                       "--out", str(tmp_path / "combined")])
    combined = (tmp_path / "combined" / "nas_proxies.md").read_text()

    def tables(report: str) -> list[str]:
        """Everything from the baselines on, without the wall-clock cells (the header's and each search's seconds)."""
        lines, column = report[report.index("## Baselines"):].splitlines(), None
        for index, line in enumerate(lines):
            cells = line.split("|")
            if len(cells) > 2 and cells[-2].strip() == "seconds / search":
                column = len(cells) - 2
            elif column is not None and len(cells) == column + 2:
                lines[index] = "|".join(cells[:column] + cells[column + 1:])
            elif not line.strip():
                column = None
        return lines

    assert tables(combined) == tables((tmp_path / "whole" / "nas_proxies.md").read_text())
    assert "| evolution | 2 | 3 | 2 |" in combined and "Combined from" in combined
    with pytest.raises(SystemExit, match="seeds \\[0\\] are already in"):
        bench_module.main(["--combine", str(tmp_path / "first" / "nas_proxies.jsonl"), str(tmp_path / "whole" / "nas_proxies.jsonl"),
                           "--out", str(tmp_path / "clash")])
    assert not (tmp_path / "clash").exists()
    # a run whose deadline cut seed 1's searches short: they are left out, and another run's seed 1 fills in
    lines = [json.loads(line) for line in (tmp_path / "whole" / "nas_proxies.jsonl").read_text().splitlines()]
    for search in (r for line in lines if line["kind"] == "summary" for r in line["searches"] if r["seed"] == 1):
        if search["strategy"] == "evolution":  # random search's seed 1 finished: it goes too (seeds are compared in pairs)
            search.update(trials_done=2, retrained=0, best_test=None)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(json.dumps(line) + "\n" for line in lines))
    bench_module.main(["--combine", str(cut), str(tmp_path / "second" / "nas_proxies.jsonl"), "--out", str(tmp_path / "refilled")])
    refilled = (tmp_path / "refilled" / "nas_proxies.md").read_text()
    assert tables(refilled) == tables((tmp_path / "whole" / "nas_proxies.md").read_text())
    assert (f"Left out, cut short by their run's deadline: evolution seed 1 of {cut} (2 of 3 trials, 0 retrained); "
            f"random seed 1 of {cut} (another search of that seed was cut)") in refilled
    # a run stopped before its summary line (killed): its finished searches and baselines are read from its rows
    stopped = tmp_path / "stopped.jsonl"
    stopped.write_text("".join(line for line in (tmp_path / "first" / "nas_proxies.jsonl").read_text().splitlines(keepends=True)
                               if json.loads(line)["kind"] != "summary"))
    bench_module.main(["--combine", str(stopped), str(tmp_path / "second" / "nas_proxies.jsonl"), "--out", str(tmp_path / "rebuilt")])
    rebuilt = (tmp_path / "rebuilt" / "nas_proxies.md").read_text()
    assert tables(rebuilt) == tables((tmp_path / "whole" / "nas_proxies.md").read_text())
    assert f"Stopped before writing a summary (their finished searches and baselines are read from the rows): {stopped}" in rebuilt


def test_combine_refuses_runs_of_other_settings_and_unfinished_runs(tmp_path: Path, bench_module) -> None:
    def run(name: str, steps: int, summary: bool = True) -> Path:
        lines = [{"kind": "config", "args": {"first_seed": "0"}, "steps": steps}]
        if summary:
            lines.append({"kind": "summary", "train_images": 10, "steps": steps, "search_fidelity": None, "verify_top": 2,
                          "strategies": ["random"], "searches": [], "baselines": {"default": [0.5]}, "seconds": 1.0})
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return path

    with pytest.raises(SystemExit, match="b.jsonl: steps 7 differs from .*a.jsonl's 6"):
        bench_module.main(["--combine", str(run("a", 6)), str(run("b", 7)), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="c.jsonl: its config line is not this script's"):
        bench_module.main(["--combine", str(run("c", 6, summary=False)), "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit, match="missing.jsonl: not a readable nas_proxies.jsonl"):
        bench_module.main(["--combine", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_search_fidelity_larger_than_a_class_stops_before_training(tmp_path: Path, bench_module, capsys) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    synthetic = write_tiny_synthetic(tmp_path, per_class=10)
    with pytest.raises(SystemExit) as exit_info:
        bench_module.main(["--dataset", dataset.path, "--synthetic", synthetic.path, "--out", str(tmp_path / "out"),
                           "--archs", "0", "--search-fidelity", "synthetic:20:3"])
    assert exit_info.value.code == 2
    assert "--search-fidelity synthetic:20:3: the synthetic training data has only 10 images" in capsys.readouterr().err
    assert not (tmp_path / "out" / "nas_proxies.jsonl").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--proxies", "real:x:3"], "--proxies real:x:3: expected SOURCE:PER_CLASS:STEPS"),
    (["--archs", "-1"], "--archs must be at least 0"),
    (["--verify-top", "0"], "--verify-top must be at least 1"),
    (["--search-fidelity", "synthetic:x:3"], "--search-fidelity synthetic:x:3: expected SOURCE:PER_CLASS:STEPS"),
    (["--search-fidelity", "real:20:0"], "--search-fidelity real:20:0: PER_CLASS and STEPS must be at least 1"),
    (["--search-fidelity", "synthetic:50:250"], "--search-fidelity synthetic:50:250 trains on GAN samples: give --synthetic"),
    (["--strategies", "evolution", "random", "--first-strategies", "tpe"], "--first-strategies tpe: each must be one of --strategies"),
    (["--max-blocks", "0"], "--max-blocks must be at least 1"),
    (["--first-seed", "-1"], "--first-seed must be at least 0"),
    (["--channels", "0", "16"], "--channels 0 16: widths must be at least 1"),
    (["--space", "huge"], "argument --space: invalid choice: 'huge'"),
])
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


def test_a_space_without_the_default_architecture_stops_before_training(tmp_path: Path, bench_module, capsys) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    with pytest.raises(SystemExit) as exit_info:  # the default ArchSpec has 32 and 64 channels
        bench_module.main(["--dataset", dataset.path, "--out", str(tmp_path / "out"), "--archs", "0", "--channels", "16", "32"])
    assert exit_info.value.code == 2
    assert "--channels / --max-blocks: the default architecture must lie in the search space" in capsys.readouterr().err
    assert not (tmp_path / "out" / "nas_proxies.jsonl").exists()


def test_gan_strategy_searches_the_wide_space(tmp_path: Path, bench_module) -> None:
    dataset = write_tiny_dataset(tmp_path, per_class=(16, 6, 6))
    out = tmp_path / "out"
    bench_module.main(["--dataset", dataset.path, "--out", str(out), "--archs", "0", "--steps", "4", "--seeds", "1",
                       "--trials", "3", "--strategies", "gan", "--space", "wide", "--population", "2", "--parallel", "1",
                       "--workers", "1", "--device", "cpu"])
    lines = _lines(out)
    assert not any("error" in line for line in lines)
    (search,) = [line for line in lines if line["kind"] == "search"]
    assert search["strategy"] == "gan" and search["trials_done"] == 3
    assert lines[-1]["space"] == "wide" and "| gan | 1 | 3 |" in (out / "nas_proxies.md").read_text()
