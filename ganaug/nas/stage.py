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

from ganaug.classifier import ArchSpec
from ganaug.classifier.train import cpu_threads
from ganaug.configbase import format_validation_error
from ganaug.errors import ConfigError
from ganaug.executor import Executor, Unpack, as_executor
from ganaug.nas.config import SearchConfig
from ganaug.nas.data import SearchData, load_search_data
from ganaug.nas.evaluator import Fidelity, TrialRunner, score_on_test
from ganaug.nas.proxies import ZERO_COST, ZeroCostRunner, balanced_batch, choose_proxy, summarize_proxies, zero_cost_score
from ganaug.nas.report import plot_fitness, plot_pareto, write_report
from ganaug.nas.results import (ProxyCorrelation, SearchResult, best_json, mark_pareto, select_best, study_rows,
                                trial_row, write_trials)
from ganaug.nas.space import SearchSpace
from ganaug.nas.study import (TrialTask, map_trials, objective_values, open_study, result_attrs, run_search_trials,
                              study_fingerprint, trial_label)
from ganaug.store import DatasetRef, SyntheticRef, atomic_write_json, write_table
from ganaug.runs import NAS_DIR, REPORT_FILE, NasPaths

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


def _proxy_names(cfg: SearchConfig) -> list[str]:
    return ["training", *ZERO_COST] if cfg.proxy == "auto" else [cfg.proxy]


def measure_proxy(space: SearchSpace, cfg: SearchConfig, data: SearchData, executor: Executor | None,
                  folder: Path) -> ProxyCorrelation:
    """Score `correlation_sample` random candidates at full fidelity and with each proxy in play (all of them
    for proxy='auto'); rank correlations, cost ratios, and the proxy the search uses."""
    rng = np.random.default_rng([cfg.seed, 7919])
    genomes = [space.sample(rng) for _ in range(cfg.correlation_sample or 0)]
    candidates = [(space.decode(g), space.augment_strength(g)) for g in genomes]
    names = _proxy_names(cfg)
    full, proxy = fidelities(cfg)
    full_data = data.full(cfg)
    runners = {"full": TrialRunner(full_data, full, cfg.seed)}
    if "training" in names:
        runners["training"] = TrialRunner(data.proxy(cfg), proxy, cfg.seed)
    calls = [(runner, arch, augment) for arch, augment in candidates for runner in runners.values()]
    labels = [trial_label(f"nas_trial sample {i} {kind}", arch)
              for i, (arch, _) in enumerate(candidates) for kind in runners]
    results = iter(map_trials(executor, _train_candidate, calls, "nas_trial", labels))
    batch = balanced_batch(full_data.train_x, full_data.train_y, cfg.zero_cost_batch, cfg.seed)
    rows: list[dict[str, Any]] = []
    for arch, augment in candidates:
        trained = {kind: next(results) for kind in runners}
        failed = next((r for r in trained.values() if isinstance(r, Exception)), None)
        if failed is not None:  # a failing architecture is left out of the sample, not fatal
            log.warning("correlation sample %s failed: %s", arch.to_json(), failed)
            continue
        row: dict[str, Any] = {"arch_json": arch.to_json(), "augment_strength": augment,
                               "full_fitness": trained["full"].accuracy, "full_seconds": trained["full"].seconds}
        if "training" in trained:
            row["training_score"], row["training_seconds"] = trained["training"].accuracy, trained["training"].seconds
        for name in names:
            if name in ZERO_COST:
                with cpu_threads(cfg.cpu_threads):
                    row[f"{name}_score"], row[f"{name}_seconds"] = zero_cost_score(name, arch, batch, data.num_classes, cfg.seed)
        rows.append(row)
    full_seconds = sum(r["full_seconds"] for r in rows)
    measured = summarize_proxies([r["full_fitness"] for r in rows], full_seconds,
                                 {n: [r[f"{n}_score"] for r in rows] for n in names},
                                 {n: sum(r[f"{n}_seconds"] for r in rows) for n in names})
    write_table(pa.Table.from_pylist(rows) if rows else pa.table({"arch_json": pa.array([], pa.string())}),
                NasPaths(folder).proxy_correlation)
    chosen = choose_proxy(measured, cfg.proxy_min_speedup) if cfg.proxy == "auto" else measured[0]
    log.info("proxy %s: Spearman %s, %.1fx cheaper than full fidelity", chosen.name, chosen.spearman, chosen.cost_ratio or 0)
    return ProxyCorrelation(sample_size=len(rows), spearman=chosen.spearman, kendall=chosen.kendall,
                            proxy_seconds=chosen.seconds, full_seconds=full_seconds, cost_ratio=chosen.cost_ratio,
                            proxy=chosen.name, candidates=measured,
                            training_fidelity=training_fidelity(cfg) if "training" in names else None)


def training_fidelity(cfg: SearchConfig) -> str:
    """The 'training' proxy in words, e.g. `synthetic (random) 50/class x 250 steps`."""
    selection = f" ({cfg.proxy_selection})" if cfg.proxy_source == "synthetic" else ""
    return f"{cfg.proxy_source}{selection} {cfg.proxy_per_class}/class x {cfg.proxy_steps} steps"


def _train_candidate(runner: TrialTask, arch: ArchSpec, augment: float) -> Any:
    return runner(arch, None, augment)


def proxy_runner(name: str, cfg: SearchConfig, data: SearchData, fidelity: Fidelity) -> TrialTask:
    """The search's trial task at proxy fidelity: short training, or a zero-cost score on a full-fidelity batch."""
    if name == "training":
        return TrialRunner(data.proxy(cfg), fidelity, cfg.seed, measure_latency="latency" in cfg.objectives)
    if "latency" in cfg.objectives:
        raise ConfigError(f"proxy='{name}' scores candidates without training; the latency objective needs proxy='training' or mode='full'")
    return ZeroCostRunner(data.full(cfg), name, cfg.seed, cfg.zero_cost_batch, cfg.cpu_threads)


def _search_proxy(study: optuna.Study, cfg: SearchConfig, measured: ProxyCorrelation | None) -> str:
    """The proxy of this search: the one configured, or auto's measured choice (kept across resumptions)."""
    stored = study.user_attrs.get("proxy")
    if stored is not None:
        return str(stored)
    name = measured.proxy if cfg.proxy == "auto" and measured is not None else cfg.proxy
    study.set_user_attr("proxy", name)
    return name


def verify_top(study: optuna.Study, cfg: SearchConfig, runner: TrialRunner, executor: Executor | None) -> None:
    """proxy-then-verify: re-evaluate the best proxy trials at full fidelity (skipping ones already done)."""
    trials = study.get_trials(deepcopy=False)
    verified = {t.user_attrs.get("verify_of") for t in trials if t.user_attrs.get("role") == "verify"}
    proxy_done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("fidelity") == "proxy"]
    top = sorted(proxy_done, key=lambda t: (-t.user_attrs["fitness"], t.number))[: cfg.verify_top_k]
    todo = [t for t in top if t.number not in verified]
    archs = [ArchSpec.from_json(t.user_attrs["arch"]) for t in todo]
    calls = [(arch, None, float(t.user_attrs.get("augment", 0.0))) for arch, t in zip(archs, todo)]
    results = map_trials(executor, runner, calls, "nas_trial",
                         [trial_label(f"nas_trial verify {t.number}", arch) for arch, t in zip(archs, todo)])
    for source, result in zip(todo, results):
        attrs: dict[str, Any] = {"role": "verify", "fidelity": "full", "arch": source.user_attrs["arch"],
                                 "augment": source.user_attrs.get("augment", 0.0), "verify_of": source.number}
        if isinstance(result, Exception):
            attrs["error"] = f"{type(result).__name__}: {result}"
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


def _final_scores(arch: ArchSpec, augment: float, cfg: SearchConfig, data: SearchData,
                  executor: Executor | None) -> tuple[float, float | None]:
    """Test accuracy of `arch` retrained (augmentation at `augment`) on real train, and on real + synthetic train."""
    final = Fidelity(name="full", steps=cfg.final_steps, batch_size=cfg.batch_size, lr=cfg.lr, device=cfg.device,
                     cpu_threads=cfg.cpu_threads)
    protocols = {"real": data.trial_data(data.real_train)}
    if data.synthetic:
        protocols["augmented"] = data.trial_data(data.augmented())
    scores = as_executor(executor).map(
        Unpack(score_on_test), [(arch, protocol, data.test, final, cfg.seed, augment) for protocol in protocols.values()],
        name="nas_final_test", labels=[trial_label(f"nas_final_test {name}", arch) for name in protocols])
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
    folder = Path(out) / NAS_DIR
    space = SearchSpace(cfg.space, data.height, data.width)
    full, proxy = fidelities(cfg)
    if cfg.mode != "full" or cfg.correlation_sample:
        data.proxy(cfg)  # a proxy subset larger than a class fails here, before anything is written
    study = open_study(cfg, space, folder, study_fingerprint(cfg, data.hashes))
    proxy_stats = measure_proxy(space, cfg, data, executor, folder) if cfg.correlation_sample else None
    search_fidelity = full if cfg.mode == "full" else proxy
    runner: TrialTask = TrialRunner(data.full(cfg), full, cfg.seed, measure_latency="latency" in cfg.objectives)
    if cfg.mode != "full":
        runner = proxy_runner(_search_proxy(study, cfg, proxy_stats), cfg, data, proxy)
    hooks = _hooks(callbacks)
    trials_path = NasPaths(folder).trials

    def on_trial(trial: FrozenTrial) -> None:
        write_trials(study_rows(study, cfg.strategy), trials_path)
        for hook in hooks:
            hook(trial_row(trial, cfg.strategy))

    run_search_trials(study, space, runner, cfg.n_trials, cfg.parallel, executor, cfg.objectives,
                      search_fidelity.name, on_trial)
    if cfg.mode == "proxy-then-verify":
        verify_top(study, cfg, TrialRunner(data.full(cfg), full, cfg.seed, "latency" in cfg.objectives), executor)
    return _finish(study, cfg, data, folder, executor, proxy_stats, started)


def _finish(study: optuna.Study, cfg: SearchConfig, data: SearchData, folder: Path, executor: Executor | None,
            proxy_stats: ProxyCorrelation | None, started: float) -> SearchResult:
    """Pick the best trial, retrain and test it, write trials/best/plots/report."""
    rows = study_rows(study, cfg.strategy)
    cost_column = "latency_ms" if "latency" in cfg.objectives else "parameter_count"
    pareto = mark_pareto(rows, cost_column)
    best = select_best(rows)
    arch = ArchSpec.from_json(best["arch_json"])
    test_real, test_augmented = _final_scores(arch, best["augment_strength"], cfg, data, executor)
    search_rows = [r for r in rows if r["role"] == "search"]
    plots = [plot_fitness(rows, NasPaths(folder).fitness_plot), plot_pareto(rows, cost_column, NasPaths(folder).pareto_plot)]
    result = SearchResult(
        strategy=cfg.strategy, mode=cfg.mode, objectives=list(cfg.objectives),
        train_data=cfg.train_data + (f" x{cfg.synthetic_ratio:g}" if cfg.train_data == "augmented" and cfg.synthetic_ratio else ""),
        trials_path=str(NasPaths(folder).trials), best_path=str(NasPaths(folder).best),
        report_path=str(folder / REPORT_FILE), plot_paths=[str(p) for p in plots],
        best_trial=best["number"], best_arch=arch, best_fitness=best["fitness"], best_fidelity=best["fidelity"],
        best_parameter_count=best["parameter_count"], best_augment_strength=best["augment_strength"],
        test_accuracy_real=test_real,
        test_accuracy_augmented=test_augmented, n_trials=len(search_rows),
        n_complete=sum(r["state"] == "complete" for r in search_rows),
        n_pruned=sum(r["state"] == "pruned" for r in search_rows),
        n_failed=sum(r["state"] == "failed" for r in search_rows),
        pareto_trials=pareto, proxy=proxy_stats, seconds=round(time.perf_counter() - started, 3),
    )
    write_trials(rows, NasPaths(folder).trials)
    atomic_write_json(NasPaths(folder).best, best_json(best, {
        "test_accuracy_real": test_real, "test_accuracy_augmented": test_augmented,
        "strategy": cfg.strategy, "mode": cfg.mode, "pareto_trials": pareto,
        "proxy": proxy_stats.model_dump() if proxy_stats else None}))
    write_report(result, rows, [f"{NAS_DIR}/{p.name}" for p in plots], folder / REPORT_FILE)
    log.info("search finished: best trial %d, val %.4f, test real %.4f", best["number"], best["fitness"], test_real)
    return result
