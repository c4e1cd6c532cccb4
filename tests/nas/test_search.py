"""End to end on tiny digits: artifacts, report, proxy modes, pruning, determinism, picklable trials."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import torch
from nas_helpers import tiny_config, tiny_data

from ganaug.classifier import ArchSpec
from ganaug.nas.evaluator import (
    Fidelity,
    TrialData,
    TrialRunner,
    evaluate_trial,
)
from ganaug.nas.results import TRIALS_SCHEMA, SearchResult
from ganaug.nas.stage import search
from ganaug.study import SharedStudy, StudySpec, open_study


def test_search_writes_trials_best_plots_and_report(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    seen: list[dict] = []
    result = search(dataset, synthetic, tiny_config(), tmp_path, callbacks=seen.append)
    nas = tmp_path / "nas"
    table = pq.read_table(nas / "trials.parquet")
    assert table.schema.names == TRIALS_SCHEMA.names and table.num_rows == 4
    rows = table.to_pylist()
    assert [r["number"] for r in seen] == [0, 1, 2, 3]
    assert all(r["fidelity"] == "full" and r["cost_seconds"] > 0 and r["parameter_count"] > 0 for r in rows)
    best = json.loads((nas / "best.json").read_text())
    assert ArchSpec.model_validate(best["arch"]) == result.best_arch
    assert best["fitness"] == result.best_fitness == max(r["fitness"] for r in rows if r["state"] == "complete")
    assert 0.0 <= result.test_accuracy_real <= 1.0 and result.test_accuracy_augmented is not None
    assert result.n_trials == 4 and result.n_complete + result.n_pruned + result.n_failed == 4
    report = (nas / "report.md").read_text()
    assert "## Architecture search" in report and "(nas/fitness.png)" in report and "(nas/pareto.png)" in report
    assert all(Path(p).stat().st_size > 0 for p in result.plot_paths)
    assert SearchResult.model_validate_json(result.model_dump_json()) == result
    assert not list(nas.glob("*.tmp"))


def test_same_seed_and_config_give_the_same_trials(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    columns = ["number", "state", "arch_json", "fitness", "parameter_count", "generation", "parents"]
    runs = []
    for name in ("a", "b"):
        result = search(dataset, synthetic, tiny_config(n_trials=3), tmp_path / name)
        runs.append((pq.read_table(result.trials_path).select(columns).to_pylist(), result.test_accuracy_real))
    assert runs[0] == runs[1]


def test_proxy_then_verify_reports_rank_correlation_and_verifies_top_k(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    cfg = tiny_config(mode="proxy-then-verify", proxy_per_class=4, proxy_steps=10, steps=20, verify_top_k=2,
                      correlation_sample=3, storage="journal", n_trials=3)
    result = search(dataset, synthetic, cfg, tmp_path)
    rows = pq.read_table(result.trials_path).to_pylist()
    search_rows = [r for r in rows if r["role"] == "search"]
    verify_rows = [r for r in rows if r["role"] == "verify"]
    assert {r["fidelity"] for r in search_rows} == {"proxy"} and len(search_rows) == 3
    assert len(verify_rows) == 2 and all(r["fidelity"] == "full" for r in verify_rows)
    assert [r["number"] for r in verify_rows] == [3, 4]
    assert {r["verify_of"] for r in verify_rows} <= {r["number"] for r in search_rows}
    assert result.best_fidelity == "full" and result.best_trial in (3, 4)
    proxy = result.proxy
    assert proxy is not None and proxy.sample_size == 3 and proxy.cost_ratio > 0
    assert proxy.spearman is None or -1.0 <= proxy.spearman <= 1.0
    assert (tmp_path / "nas" / "proxy_correlation.parquet").is_file()
    assert proxy.training_fidelity == "synthetic (random) 4/class x 10 steps"
    assert ("Proxy fidelity on 3 random architectures: **training (synthetic (random) 4/class x 10 steps)**"
            in Path(result.report_path).read_text())
    # resuming a finished study verifies nothing twice and adds no trials
    again = search(dataset, synthetic, cfg, tmp_path)
    assert len(pq.read_table(again.trials_path)) == 5


def test_multi_objective_search_marks_a_pareto_front(tmp_path: Path, tiny_data) -> None:
    dataset, synthetic = tiny_data
    result = search(dataset, synthetic, tiny_config(strategy="nsga2", objectives=["params"], n_trials=5), tmp_path)
    rows = pq.read_table(result.trials_path).to_pylist()
    front = [r for r in rows if r["pareto"]]
    assert [r["number"] for r in front] == result.pareto_trials and front
    for r in front:  # nothing is both more accurate and smaller
        assert not any(o["fitness"] >= r["fitness"] and o["parameter_count"] <= r["parameter_count"]
                       and (o["fitness"], o["parameter_count"]) != (r["fitness"], r["parameter_count"]) for o in rows)
    assert result.best_trial in result.pareto_trials


def _data(tiny_data) -> TrialData:
    from ganaug.data.tensors import load_tensors

    dataset, _ = tiny_data
    return TrialData(*load_tensors(dataset, "train"), *load_tensors(dataset, "val"), num_classes=10)


def pruned_study(pruner: optuna.pruners.BasePruner, folder: Path | None = None) -> SharedStudy:
    """A study (journal file under `folder`, else in memory) holding 3 finished trials that reached val accuracy 1.0
    at every evaluation."""
    spec = StudySpec(name="nas", label="search study", storage="journal" if folder else "memory",
                     path=folder / "study.journal" if folder else None, fingerprint="{}", resumable=frozenset())
    study = open_study(spec, optuna.samplers.RandomSampler(0), pruner)
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={e: 1.0 for e in range(1, 5)}))
    return study


def test_pruner_stops_a_trial_worse_than_finished_ones(tiny_data) -> None:
    data = _data(tiny_data)
    arch = ArchSpec.model_validate({"blocks": [{"channels": 4}], "head_width": 0})
    fidelity = Fidelity(steps=8, eval_every=2)
    study = pruned_study(optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    trial = study.ask()
    result = evaluate_trial(arch, data, fidelity, prune=study.pruning(trial.number, before=trial.number))
    assert result.state == "pruned" and result.steps_run == 4  # judged from evaluation 2 on (warm-up of 1)
    # the worker reported its readings into its trial in the study's storage
    assert study.frozen(trial.number).intermediate_values == dict(enumerate(result.val_curve, start=1))
    unpruned = evaluate_trial(arch, data, fidelity)
    assert unpruned.state == "complete" and unpruned.steps_run == 8


def test_trial_task_survives_pickling_for_remote_workers(tiny_data, tmp_path: Path) -> None:
    runner = TrialRunner(_data(tiny_data), Fidelity(steps=5), seed=3, measure_latency=True)
    study = pruned_study(optuna.pruners.MedianPruner(), tmp_path)
    local_trial, remote_trial = study.ask(), study.ask()
    arch = ArchSpec.model_validate({"blocks": [{"channels": 4}], "head_width": 0})
    local = runner(arch, study.pruning(local_trial.number, before=3))
    prune = pickle.loads(pickle.dumps(study.pruning(remote_trial.number, before=3)))
    remote = pickle.loads(pickle.dumps(runner))(pickle.loads(pickle.dumps(arch)), prune)
    assert (remote.accuracy, remote.parameter_count, remote.val_curve) == (local.accuracy, local.parameter_count, local.val_curve)
    assert remote.latency_ms is not None and remote.latency_ms > 0
    assert study.frozen(remote_trial.number).intermediate_values == dict(enumerate(remote.val_curve, start=1))


@pytest.mark.parametrize("source", ["real", "synthetic"])
def test_proxy_training_set_is_class_balanced(tiny_data, source: str) -> None:
    from ganaug.nas.data import load_search_data

    dataset, synthetic = tiny_data
    data = load_search_data(dataset, synthetic, tiny_config(proxy_source=source, proxy_per_class=3))
    proxy = data.proxy(tiny_config(proxy_source=source, proxy_per_class=3))
    assert proxy.train_y.bincount().tolist() == [3] * 10


def test_auto_proxy_is_measured_chosen_used_and_reported(tmp_path: Path, tiny_data) -> None:
    from ganaug.nas.proxies import ZERO_COST, choose_proxy

    dataset, synthetic = tiny_data
    cfg = tiny_config(mode="proxy", proxy="auto", proxy_min_speedup=1.0, correlation_sample=4, proxy_per_class=4,
                      proxy_steps=5, steps=20, n_trials=3)
    result = search(dataset, synthetic, cfg, tmp_path)
    proxy = result.proxy
    assert proxy is not None and {c.name for c in proxy.candidates} == {"training", *ZERO_COST}
    assert proxy.proxy == choose_proxy(proxy.candidates, 1.0).name and proxy.sample_size == 4
    chosen = next(c for c in proxy.candidates if c.name == proxy.proxy)
    assert proxy.spearman == chosen.spearman and proxy.cost_ratio == chosen.cost_ratio
    table = pq.read_table(tmp_path / "nas" / "proxy_correlation.parquet").to_pylist()
    assert len(table) == 4 and {f"{n}_score" for n in ZERO_COST} <= set(table[0])
    report = Path(result.report_path).read_text()
    assert f"**{proxy.proxy}**" in report and "| synflow |" in report and "the search used it" in report
    rows = pq.read_table(result.trials_path).to_pylist()
    assert {r["fidelity"] for r in rows} == {"proxy"} and len(rows) == 3


def test_zero_cost_search_records_the_score_as_fitness(tmp_path: Path, tiny_data) -> None:
    from ganaug.classifier import build_classifier, parameter_count

    dataset, synthetic = tiny_data
    cfg = tiny_config(mode="proxy", proxy="params", correlation_sample=3, proxy_per_class=4, proxy_steps=5, n_trials=4)
    result = search(dataset, synthetic, cfg, tmp_path)
    rows = pq.read_table(result.trials_path).to_pylist()
    for row in rows:
        count = parameter_count(build_classifier(ArchSpec.from_json(row["arch_json"]), 1, 8, 8, 10))
        assert row["fitness"] == row["parameter_count"] == count and row["steps_run"] == 0
    assert result.best_parameter_count == max(r["parameter_count"] for r in rows)
    assert result.proxy is not None and result.proxy.proxy == "params"


def test_augmentation_strength_is_searched_recorded_and_retrained(tmp_path: Path, tiny_data) -> None:
    from ganaug.nas.config import SpaceConfig

    dataset, synthetic = tiny_data
    space = SpaceConfig(max_blocks=1, channels=[4], head_widths=[0], residual=[False, True], augment_strengths=[0.0, 1.0])
    result = search(dataset, synthetic, tiny_config(space=space, strategy="random", n_trials=6), tmp_path)
    rows = pq.read_table(result.trials_path).to_pylist()
    assert {r["augment_strength"] for r in rows} == {0.0, 1.0}
    best = json.loads((tmp_path / "nas" / "best.json").read_text())
    assert best["augment_strength"] == result.best_augment_strength == next(
        r["augment_strength"] for r in rows if r["number"] == result.best_trial)


def _synthetic_with_quality(folder: Path, quality) -> object:
    import numpy as np
    from nas_helpers import META

    from ganaug.store import SyntheticRef, write_dataset

    rng = np.random.default_rng(0)
    n = len(quality)
    images = rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8)
    ref = write_dataset(folder / "synthetic.parquet", images, np.arange(n) % 10, np.full(n, "train"), META,
                        sample_ids=np.array([f"syn-{i:05d}" for i in range(n)]), sources=np.full(n, "synthetic"),
                        extra_columns={"checkpoint_id": np.full(n, "c"), "quality_score": np.asarray(quality, dtype=np.float32)})
    return SyntheticRef(**ref.model_dump(exclude={"kind"}))


def test_confident_proxy_takes_the_highest_quality_images_of_each_class(tmp_path: Path, tiny_data) -> None:
    import numpy as np

    from ganaug.nas.data import load_search_data

    dataset, _ = tiny_data
    quality = np.arange(100, dtype=np.float32)  # image i has class i % 10; the last ones score highest
    synthetic = _synthetic_with_quality(tmp_path, quality)
    cfg = tiny_config(proxy_source="synthetic", proxy_per_class=3, proxy_selection="confident")
    data = load_search_data(dataset, synthetic, cfg)
    proxy = data.proxy(cfg)
    x, _ = data.synthetic
    expected = torch.cat([x[[label + 90, label + 80, label + 70]] for label in range(10)])
    chosen = {tuple(img.flatten().tolist()) for img in proxy.train_x}
    assert chosen == {tuple(img.flatten().tolist()) for img in expected}
    assert proxy.train_y.bincount().tolist() == [3] * 10
    random_pick = data.proxy(tiny_config(proxy_source="synthetic", proxy_per_class=3))
    assert {tuple(img.flatten().tolist()) for img in random_pick.train_x} != chosen


def test_confident_proxy_without_scores_is_a_data_error(tmp_path: Path, tiny_data) -> None:
    import numpy as np

    from ganaug.errors import DataError
    from ganaug.nas.data import load_search_data

    dataset, _ = tiny_data
    synthetic = _synthetic_with_quality(tmp_path, np.full(100, np.nan))
    cfg = tiny_config(proxy_source="synthetic", proxy_per_class=3, proxy_selection="confident")
    with pytest.raises(DataError, match="proxy_selection='confident' needs synthetic.parquet's quality_score"):
        load_search_data(dataset, synthetic, cfg).proxy(cfg)
