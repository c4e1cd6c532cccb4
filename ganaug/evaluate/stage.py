"""The evaluation stage: prepare run specs, run them (optionally in parallel), summarize, report."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ganaug.classifier.train import cpu_threads
from ganaug.device import select_device
from ganaug.errors import ConfigError
from ganaug.data.splits import minority_classes
from ganaug.evaluate.config import IMBALANCE_DEFAULTS, POOL_DEFAULTS, POOL_PROTOCOLS, EvaluateConfig
from ganaug.evaluate.data import ProtocolData, load_protocol_data
from ganaug.evaluate.metrics import generative_metrics
from ganaug.evaluate.protocols import RunSpec, build_run_specs, check_synthetic_supply, run_protocol
from ganaug.evaluate.stacking import run_stack, stack_units
from ganaug.evaluate.stats import Selection, SummaryRow, select_use, summarize
from ganaug.evaluate.table import write_evaluation
from ganaug.executor import as_executor
from ganaug.runs import EVALUATION_FILE, EVALUATION_PLOT, REPORT_FILE
from ganaug.store import DatasetRef, SyntheticRef, atomic_paths, read_dataset_meta

log = logging.getLogger(__name__)
RUN_THREADS = 1  # torch threads per protocol run (see run_all)


# (run folder, evaluation table, report file) -> the report written; ganaug.report.write_report is one
ReportWriter = Callable[[Path, Path, Path], Any]


class EvaluationResult(BaseModel):
    """What the evaluation stage wrote and its protocol table."""

    model_config = ConfigDict(frozen=True)

    evaluation_path: str
    report_path: str | None  # None when the caller gave no report writer
    plot_path: str | None
    summary: list[SummaryRow]
    selections: list[Selection] = []
    generative_metrics: dict[str, Any] | None
    runs: int
    seconds: float
    notes: list[str]


def prepare_evaluation(
    dataset: DatasetRef, synthetic: SyntheticRef | None, cfg: EvaluateConfig
) -> tuple[ProtocolData, list[RunSpec]]:
    """Load and validate the inputs and list the runs; raises before anything is trained or written."""
    if cfg.needs_synthetic() and synthetic is None:
        chosen = [p for p in cfg.protocols if p in ("augmented", "synthetic")]
        raise ConfigError(
            f"protocols {chosen} need synthetic data; run `ganaug generate` first or choose protocols real,classic"
        )
    data = load_protocol_data(dataset, synthetic if cfg.needs_synthetic() or cfg.generative_metrics else None)
    cfg, resolved_notes = resolved_config(cfg, data)
    specs = build_run_specs(cfg)
    check_synthetic_supply(data, specs, cfg)
    notes = [*data.notes, *resolved_notes]
    if cfg.needs_synthetic() and any(f < 1.0 for f in cfg.train_fractions):
        notes.append(
            f"the synthetic images come from a GAN trained on the full train split ({len(data.train_labels)} real "
            "images), so below 100% the augmented and synthetic protocols draw on real images that the real protocol "
            "does not see; for a like-for-like low-data measurement ingest with train_fraction and train the GAN on "
            "that dataset"
        )
    return ProtocolData(**{**data.__dict__, "notes": notes}), specs


def resolved_config(cfg: EvaluateConfig, data: ProtocolData) -> tuple[EvaluateConfig, list[str]]:
    """The config a run uses, with notes saying what the dataset changed: defaults the user left unset fit the data.

    With an unlabelled pool and protocols left at their default, the pool protocols are added; protocols that
    need a pool are refused, before any training, on a dataset without one. With minority classes, protocols
    left at their default gain oversampled and balanced_mixed, and a selection metric left at its default
    becomes macro_f1 (`_imbalance_defaults`).
    """
    given = cfg.model_fields_set  # of the user's config: what the steps below set is not the user's choice
    cfg, notes = _pool_defaults(cfg, data, given)
    cfg, imbalance_notes = _imbalance_defaults(cfg, data, given)
    return cfg, [*notes, *imbalance_notes]


def _pool_defaults(cfg: EvaluateConfig, data: ProtocolData, given: set[str]) -> tuple[EvaluateConfig, list[str]]:
    pool = 0 if data.pool_images is None else len(data.pool_images)
    if not pool:
        wanting = [p for p in cfg.protocols if p in POOL_PROTOCOLS]
        if wanting:
            raise ConfigError(
                f"protocols {wanting} need an unlabelled pool, and the dataset has none; ingest with --unlabelled PATH "
                "or --labels-per-class K, or drop them from evaluate.protocols"
            )
        return cfg, []
    if "protocols" in given:
        return cfg, [f"the dataset has an unlabelled pool of {pool} images"]
    added = [p for p in POOL_DEFAULTS if p not in cfg.protocols]
    note = (f"the dataset has an unlabelled pool of {pool} images: protocols {', '.join(added)} were added to the defaults "
            "(self_training is the no-GAN baseline that uses the pool; the verdict compares against it)")
    return cfg.model_copy(update={"protocols": [*cfg.protocols, *added]}), [note]


def _imbalance_defaults(cfg: EvaluateConfig, data: ProtocolData, given: set[str]) -> tuple[EvaluateConfig, list[str]]:
    """With minority classes in the train split: oversampled (the no-GAN baseline for imbalance) and balanced_mixed
    (when synthetic.parquet can fill its share of every class's gap) in the default protocols, macro_f1 selection."""
    counts = data.class_counts(data.train_labels).tolist()
    minority = [name for name, is_minority in zip(data.class_names, minority_classes(counts), strict=True) if is_minority]
    if not minority or {"protocols", "selection_metric"} <= given:
        return cfg, []
    update: dict[str, Any] = {}
    said = [f"the train split has {len(minority)} minority class{'es' if len(minority) > 1 else ''} "
            f"({', '.join(minority)}: fewer than half the images of the largest class)"]
    if "protocols" not in given:
        left_out = _short_of_synthetic(cfg, data, "balanced_mixed")
        added = [p for p in IMBALANCE_DEFAULTS if p not in cfg.protocols and not (p == "balanced_mixed" and left_out)]
        update["protocols"] = [*cfg.protocols, *added]
        if added:
            plural = len(added) > 1
            said.append(f"protocol{'s' if plural else ''} {', '.join(added)} {'were' if plural else 'was'} added to the "
                        "defaults (oversampled is the no-GAN baseline for imbalance)")
        if left_out:
            said.append(f"balanced_mixed was left out ({left_out}; `ganaug generate` with its default mode, or with "
                        "--mode balance, samples enough)")
    if "selection_metric" not in given and cfg.selection_metric != "macro_f1":
        update["selection_metric"] = "macro_f1"
        said.append("the best use is selected on macro_f1 instead of accuracy")
    return cfg.model_copy(update=update), ["; ".join(said)]


def _short_of_synthetic(cfg: EvaluateConfig, data: ProtocolData, protocol: str) -> str | None:
    """Why synthetic.parquet cannot supply `protocol`'s runs (`check_synthetic_supply`), or None when it can."""
    trial = cfg.model_copy(update={"protocols": [protocol]})
    try:
        check_synthetic_supply(data, build_run_specs(trial), trial)
    except ConfigError as err:
        return str(err).split("; ")[0]  # what is short, without the advice for an explicit choice
    return None


def run_label(spec: RunSpec) -> str:
    """A protocol run's display name, e.g. `augmented x0.5 25% real seed 1`."""
    ratio = f" x{spec.ratio:g}" if spec.ratio is not None else ""
    kept = f" {spec.train_fraction:.0%} real" if spec.train_fraction < 1.0 else ""
    return f"{spec.protocol}{ratio}{kept} seed {spec.seed}"


def run_all(specs: list[RunSpec], data: ProtocolData, cfg: EvaluateConfig, executor: Any = None) -> list[dict[str, Any]]:
    """Run every spec through `executor` (`ganaug.executor`; default `cfg.workers` local threads), rows in spec order.

    Every run trains with one torch thread and seeds itself and its own generators, so the rows are
    the same whatever the executor (threads, processes, Dask) and however many runs go at once.
    Several small networks side by side use the cores better than one network spread over them.
    With stacking on (`EvaluateConfig.stack`; auto = on a CUDA GPU) the runs that may share a stack go to the
    executor as one unit (`ganaug.evaluate.stacking`), and their rows equal their separate runs' up to float rounding.
    """
    units = stack_units(specs, cfg, select_device(cfg.train.device))
    with cpu_threads(RUN_THREADS):
        if all(len(unit) == 1 for unit in units):
            job = functools.partial(run_protocol, data=data, cfg=cfg)
            return as_executor(executor, min(cfg.resolved_workers(), len(specs))).map(
                job, specs, name="protocol_run", labels=[run_label(spec) for spec in specs])
        groups = [[specs[i] for i in unit] for unit in units]
        results = as_executor(executor, min(cfg.resolved_workers(), len(groups))).map(
            functools.partial(run_stack, data=data, cfg=cfg), groups, name="protocol_run",
            labels=[group_label(group) for group in groups])
    rows: list[dict[str, Any]] = [{} for _ in specs]
    for unit, unit_rows in zip(units, results, strict=True):
        for i, row in zip(unit, unit_rows, strict=True):
            rows[i] = row
    return rows


def group_label(specs: list[RunSpec]) -> str:
    """A unit of stacked runs' display name, e.g. `3 runs: real, classic seeds 0-2` (a run alone: its `run_label`)."""
    if len(specs) == 1:
        return run_label(specs[0])
    kinds = list(dict.fromkeys(run_label(spec.model_copy(update={"seed": 0}))[: -len(" seed 0")] for spec in specs))
    seeds = sorted({spec.seed for spec in specs})
    seeds_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    return f"{len(specs)} runs: {', '.join(kinds)} {seeds_text}"


def finish_evaluation(
    rows: list[dict[str, Any]],
    data: ProtocolData,
    dataset: DatasetRef,
    synthetic: SyntheticRef | None,
    cfg: EvaluateConfig,
    out: Path,
    seconds: float = 0.0,
    report: ReportWriter | None = None,
) -> EvaluationResult:
    """Generative metrics and evaluation.parquet from finished rows, and `report`'s files (report.md, the plot).

    `report(run_dir, evaluation, target)` writes the report from the evaluation table `evaluation` into
    `target`; both files are written under temporary names and renamed together. The runner passes
    `ganaug.report.write_report` (a layer above this one); without it only evaluation.parquet is written.
    """
    metrics = generative_metrics(data, cfg) if cfg.generative_metrics and data.synthetic_images is not None else None
    cfg = resolved_config(cfg, data)[0]  # the protocols and selection metric that ran, as the report records them
    summary = summarize(rows, cfg.confidence, cfg.selection_metric)
    selections = select_use(summary)
    meta = {
        "config": cfg.model_dump(mode="json"),
        "dataset": dataset.model_dump(mode="json"),
        "synthetic": synthetic.model_dump(mode="json") if synthetic is not None else None,
        "class_names": data.class_names,
        "class_train_counts": [int(n) for n in data.class_counts(data.train_labels)],
        "generative_metrics": metrics,
        "notes": data.notes,
        "pool": read_dataset_meta(dataset.path).extra.get("pool"),
        "confidence": cfg.confidence,
        "selection_metric": cfg.selection_metric,
        "selections": [selection.model_dump(mode="json") for selection in selections],
    }
    out = Path(out)
    evaluation_path, report_path = out / EVALUATION_FILE, out / REPORT_FILE
    if report is None:
        with atomic_paths(evaluation_path) as (evaluation_tmp,):
            write_evaluation(evaluation_tmp, rows, meta)
    else:
        with atomic_paths(evaluation_path, report_path) as (evaluation_tmp, report_tmp):  # renamed together
            write_evaluation(evaluation_tmp, rows, meta)
            report(out, evaluation_tmp, report_tmp)  # also draws the accuracy plot from these rows
    plot_path = out / EVALUATION_PLOT
    return EvaluationResult(
        evaluation_path=str(evaluation_path),
        report_path=str(report_path) if report is not None else None,
        plot_path=str(plot_path) if plot_path.is_file() else None,
        summary=summary,
        selections=selections,
        generative_metrics=metrics,
        runs=len(rows),
        seconds=round(seconds, 3),
        notes=data.notes,
    )


def evaluate(
    dataset: DatasetRef, synthetic: SyntheticRef | None, cfg: EvaluateConfig, out: Path, executor: Any = None,
    report: ReportWriter | None = None,
) -> EvaluationResult:
    """Train and score every (regime, protocol, ratio, seed) run on the real test split; write evaluation.parquet
    (and, with `report`, report.md beside it: `finish_evaluation`)."""
    started = time.perf_counter()
    data, specs = prepare_evaluation(dataset, synthetic, cfg)
    log.info("evaluation: %d runs", len(specs))
    rows = run_all(specs, data, cfg, executor)
    return finish_evaluation(rows, data, dataset, synthetic, cfg, Path(out), time.perf_counter() - started, report)
