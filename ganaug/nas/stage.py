"""`search`: the architecture-search stage (space -> strategy -> evaluator -> results)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pyarrow as pa
from optuna.trial import FrozenTrial, TrialState, create_trial
from pydantic import ValidationError
from scipy import stats

from ganaug.classifier import ArchSpec
from ganaug.configbase import format_validation_error
from ganaug.errors import ConfigError
from ganaug.nas.config import SearchConfig
from ganaug.nas.data import SearchData, load_search_data
from ganaug.nas.evaluator import Fidelity, TrialResult, TrialRunner, score_on_test
from ganaug.nas.report import plot_fitness, plot_pareto, write_report
from ganaug.nas.results import (ProxyCorrelation, SearchResult, best_json, mark_pareto, select_best, study_rows,
                                trial_row, write_trials)
from ganaug.nas.space import SearchSpace
from ganaug.nas.study import (Executor, objective_values, open_study, result_attrs, run_search_trials, submit_call,
                              study_fingerprint)
from ganaug.store import DatasetRef, SyntheticRef, atomic_write_json, write_table

log = logging.getLogger(__name__)

RowHook = Callable[[dict[str, Any]], None]


def fidelities(cfg: SearchConfig) -> tuple[Fidelity, Fidelity]:
    """(full, proxy) training budgets from the config."""
    common = {"batch_size": cfg.batch_size, "lr": cfg.lr, "device": cfg.device, "cpu_threads": cfg.cpu_threads}
    return (Fidelity(name="full", steps=cfg.steps, patience=cfg.patience, **common),
            Fidelity(name="proxy", steps=cfg.proxy_steps, patience=cfg.patience, **common))


def _validated(cfg: SearchConfig) -> SearchConfig:
    """Re-validate (a config built with `model_construct` skips pydantic's checks)."""
    try:
        return SearchConfig.model_validate(cfg.model_dump())
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "search config")) from None


def measure_proxy(space: SearchSpace, cfg: SearchConfig, data: SearchData, executor: Executor | None,
                  folder: Path) -> ProxyCorrelation:
    """Score `correlation_sample` random architectures at both fidelities; rank correlation and cost ratio."""
    rng = np.random.default_rng([cfg.seed, 7919])
    archs = [space.decode(space.sample(rng)) for _ in range(cfg.correlation_sample or 0)]
    full, proxy = fidelities(cfg)
    runners = (TrialRunner(data.full(cfg), full, cfg.seed), TrialRunner(data.proxy(cfg), proxy, cfg.seed))
    futures = [[submit_call(executor, runner, arch, None) for runner in runners] for arch in archs]
    pairs: list[tuple[TrialResult, TrialResult]] = []
    for arch, (full_future, proxy_future) in zip(archs, futures):
        try:
            pairs.append((full_future.result(), proxy_future.result()))
        except Exception as err:  # a failing architecture is left out of the sample, not fatal
            log.warning("correlation sample %s failed: %s", arch.to_json(), err)
    full_fit = [f.accuracy for f, _ in pairs]
    proxy_fit = [p.accuracy for _, p in pairs]
    varied = len(pairs) >= 3 and len(set(full_fit)) > 1 and len(set(proxy_fit)) > 1
    spearman = float(stats.spearmanr(full_fit, proxy_fit).statistic) if varied else None
    kendall = float(stats.kendalltau(full_fit, proxy_fit).statistic) if varied else None
    full_s, proxy_s = sum(f.seconds for f, _ in pairs), sum(p.seconds for _, p in pairs)
    write_table(pa.table({"arch_json": [f.arch_json for f, _ in pairs], "full_fitness": full_fit,
                          "proxy_fitness": proxy_fit, "full_seconds": [f.seconds for f, _ in pairs],
                          "proxy_seconds": [p.seconds for _, p in pairs]}), folder / "proxy_correlation.parquet")
    return ProxyCorrelation(sample_size=len(pairs), spearman=spearman, kendall=kendall, proxy_seconds=proxy_s,
                            full_seconds=full_s, cost_ratio=full_s / proxy_s if proxy_s > 0 else None)


def verify_top(study: optuna.Study, cfg: SearchConfig, runner: TrialRunner, executor: Executor | None) -> None:
    """proxy-then-verify: re-evaluate the best proxy trials at full fidelity (skipping ones already done)."""
    trials = study.get_trials(deepcopy=False)
    verified = {t.user_attrs.get("verify_of") for t in trials if t.user_attrs.get("role") == "verify"}
    proxy_done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("fidelity") == "proxy"]
    top = sorted(proxy_done, key=lambda t: (-t.user_attrs["fitness"], t.number))[: cfg.verify_top_k]
    todo = [t for t in top if t.number not in verified]
    futures = [submit_call(executor, runner, ArchSpec.from_json(t.user_attrs["arch"]), None) for t in todo]
    for source, future in zip(todo, futures):
        attrs: dict[str, Any] = {"role": "verify", "fidelity": "full", "arch": source.user_attrs["arch"],
                                 "verify_of": source.number}
        try:
            result = future.result()
        except Exception as err:
            attrs["error"] = f"{type(err).__name__}: {err}"
            study.add_trial(create_trial(state=TrialState.FAIL, params=source.params,
                                         distributions=source.distributions, user_attrs=attrs))
            continue
        attrs.update(result_attrs(result))
        study.add_trial(create_trial(values=objective_values(result, cfg.objectives), params=source.params,
                                     distributions=source.distributions, user_attrs=attrs))


def _hooks(callbacks: RowHook | Sequence[RowHook] | None) -> list[RowHook]:
    if callbacks is None:
        return []
    return [callbacks] if callable(callbacks) else list(callbacks)


def _final_scores(arch: ArchSpec, cfg: SearchConfig, data: SearchData, executor: Executor | None) -> tuple[float, float | None]:
    """Test accuracy of `arch` retrained on real train, and on real + synthetic train."""
    final = Fidelity(name="full", steps=cfg.final_steps, batch_size=cfg.batch_size, lr=cfg.lr, device=cfg.device,
                     cpu_threads=cfg.cpu_threads)
    protocols = [data.trial_data(data.real_train)] + ([data.trial_data(data.augmented())] if data.synthetic else [])
    futures = [submit_call(executor, score_on_test, arch, protocol, data.test, final, cfg.seed) for protocol in protocols]
    scores = [f.result() for f in futures]
    return scores[0], (scores[1] if len(scores) > 1 else None)


def search(
    dataset: DatasetRef,
    synthetic: SyntheticRef | None,
    cfg: SearchConfig,
    out: Path,
    executor: Executor | None = None,
    callbacks: RowHook | Sequence[RowHook] | None = None,
) -> SearchResult:
    """Search classifier architectures; write `out/nas/` (trials, best, plots, report) and return the result."""
    started = time.perf_counter()
    cfg = _validated(cfg)
    data = load_search_data(dataset, synthetic, cfg)
    folder = Path(out) / "nas"
    space = SearchSpace(cfg.space, data.height, data.width)
    full, proxy = fidelities(cfg)
    search_fidelity = full if cfg.mode == "full" else proxy
    runner = TrialRunner(data.full(cfg) if cfg.mode == "full" else data.proxy(cfg), search_fidelity, cfg.seed,
                         measure_latency="latency" in cfg.objectives)
    study = open_study(cfg, space, folder, study_fingerprint(cfg, data.hashes))
    hooks = _hooks(callbacks)
    trials_path = folder / "trials.parquet"

    def on_trial(trial: FrozenTrial) -> None:
        write_trials(study_rows(study, cfg.strategy), trials_path)
        for hook in hooks:
            hook(trial_row(trial, cfg.strategy))

    run_search_trials(study, space, runner, cfg.n_trials, cfg.parallel, executor, cfg.objectives,
                      search_fidelity.name, on_trial)
    if cfg.mode == "proxy-then-verify":
        verify_top(study, cfg, TrialRunner(data.full(cfg), full, cfg.seed, "latency" in cfg.objectives), executor)
    proxy_stats = measure_proxy(space, cfg, data, executor, folder) if cfg.correlation_sample else None
    return _finish(study, cfg, data, folder, executor, proxy_stats, started)


def _finish(study: optuna.Study, cfg: SearchConfig, data: SearchData, folder: Path, executor: Executor | None,
            proxy_stats: ProxyCorrelation | None, started: float) -> SearchResult:
    """Pick the best trial, retrain and test it, write trials/best/plots/report."""
    rows = study_rows(study, cfg.strategy)
    cost_column = "latency_ms" if "latency" in cfg.objectives else "parameter_count"
    pareto = mark_pareto(rows, cost_column)
    best = select_best(rows)
    arch = ArchSpec.from_json(best["arch_json"])
    test_real, test_augmented = _final_scores(arch, cfg, data, executor)
    search_rows = [r for r in rows if r["role"] == "search"]
    plots = [plot_fitness(rows, folder / "fitness.png"), plot_pareto(rows, cost_column, folder / "pareto.png")]
    result = SearchResult(
        strategy=cfg.strategy, mode=cfg.mode, objectives=list(cfg.objectives),
        train_data=cfg.train_data + (f" x{cfg.synthetic_ratio:g}" if cfg.train_data == "augmented" and cfg.synthetic_ratio else ""),
        trials_path=str(folder / "trials.parquet"), best_path=str(folder / "best.json"),
        report_path=str(folder / "report.md"), plot_paths=[str(p) for p in plots],
        best_trial=best["number"], best_arch=arch, best_fitness=best["fitness"], best_fidelity=best["fidelity"],
        best_parameter_count=best["parameter_count"], test_accuracy_real=test_real,
        test_accuracy_augmented=test_augmented, n_trials=len(search_rows),
        n_complete=sum(r["state"] == "complete" for r in search_rows),
        n_pruned=sum(r["state"] == "pruned" for r in search_rows),
        n_failed=sum(r["state"] == "failed" for r in search_rows),
        pareto_trials=pareto, proxy=proxy_stats, seconds=round(time.perf_counter() - started, 3),
    )
    write_trials(rows, folder / "trials.parquet")
    atomic_write_json(folder / "best.json", best_json(best, {
        "test_accuracy_real": test_real, "test_accuracy_augmented": test_augmented,
        "strategy": cfg.strategy, "mode": cfg.mode, "pareto_trials": pareto,
        "proxy": proxy_stats.model_dump() if proxy_stats else None}))
    write_report(result, rows, [f"nas/{p.name}" for p in plots], folder / "report.md")
    log.info("search finished: best trial %d, val %.4f, test real %.4f", best["number"], best["fitness"], test_real)
    return result
