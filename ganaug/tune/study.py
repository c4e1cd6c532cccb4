"""`tune_gan(dataset, cfg, out) -> TuneResult`: an Optuna study over GanConfig judged by downstream utility.

A trial trains the GAN for `max_steps`; at every rung (min_steps x reduction_factor^k) its
utility is measured — the accuracy on real val images of a classifier trained only on samples of
the EMA generator at that step (CAS on val), times the share of classes whose samples are not
collapsed (`collapse_penalty`, see `Utility`) — and reported to the pruner, which stops the trial
when it is not among the best 1/reduction_factor at that rung (successive halving, or Hyperband's
brackets of it). The study is stored in out/tune/study.db and can be resumed (`ganaug.tune.storage`).

The loop is `ganaug.study.run_trials`, shared with the architecture search: trials are asked in
batches of `parallel`, run through an executor (default: `parallel` threads; or Prefect tasks, or any
`concurrent.futures` pool), and told in the order they were asked; a trial's worker reports its rung
readings into the study's storage, where the pruner judges it against the trials told before its
batch. So one seed and `parallel` give the same trials however the workers are scheduled (on the
CPU; GPU kernels may differ in the last bits).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml
from pydantic import BaseModel, ConfigDict

from ganaug.classifier import ArchSpec, TrainConfig, accuracy, train_classifier
from ganaug.classifier.train import cpu_threads
from ganaug.data.tensors import load_tensors
from ganaug.errors import DataError
from ganaug.executor import Executor
from ganaug.gan import load_generator, sample, train_gan
from ganaug.gan.monitor import within_class_spread
from ganaug.pruning import TrialPruning
from ganaug.runs import GanPaths, TunePaths
from ganaug.store import (
    DatasetRef,
    LoadedDataset,
    atomic_write_json,
    atomic_write_text,
    read_dataset,
)
from ganaug.tune.config import TuneConfig, from_gan_config, suggest, to_gan_config
from ganaug.tune.history import (
    DatasetFeatures,
    append_record,
    check_history,
    dataset_features,
    history_path,
    history_rows,
    make_record,
    penalised_utility,
)
from ganaug.tune.schedule import observations, schedule_for
from ganaug.study import Outcome, TrialWork, run_trials, write_rows
from ganaug.tune.storage import ROLE, counts, open_study, trial_row
from ganaug.tune.warmstart import Neighbour, nearest_datasets, warm_order

log = logging.getLogger(__name__)

TRIALS_SCHEMA = pa.schema([
    pa.field("number", pa.int64(), nullable=False),
    pa.field("state", pa.string(), nullable=False),  # complete | pruned | failed
    pa.field("warm_from", pa.string()),  # dataset path whose config this trial came from; null = sampled
    pa.field("params", pa.string(), nullable=False),  # JSON
    pa.field("rung_steps", pa.list_(pa.int64()), nullable=False),
    pa.field("rung_utility", pa.list_(pa.float64()), nullable=False),  # the objective at each rung
    pa.field("rung_cas", pa.list_(pa.float64()), nullable=False),  # CAS on val at each rung
    pa.field("rung_collapsed", pa.list_(pa.int64()), nullable=False),  # collapsed classes at each rung
    pa.field("utility", pa.float64()),  # the objective at max_steps (complete trials)
    pa.field("seconds", pa.float64(), nullable=False),
    pa.field("finished_after", pa.float64(), nullable=False),  # seconds since the study began
    pa.field("error", pa.string()),
])


class TuneResult(BaseModel):
    """What a tuning produced; small and JSON-serializable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    best_trial: int
    best_utility: float
    best_config_path: str
    pipeline_config_path: str
    trials_path: str
    trials: int
    pruned: int
    failed: int
    warm_trials: int
    warm_from: list[str]
    resumed_trials: int  # trials finished before this call (a resumed study)
    seconds: float


@dataclass(frozen=True)
class Utility:
    """A generator's downstream utility at one step.

    `cas`: accuracy on real val images of a classifier trained only on its samples (CAS on val).
    `collapsed`: classes whose samples' within-class spread (per-pixel standard deviation, as in the
    collapse monitor) is below `collapse_spread` of the real val images' spread. CAS alone rewards a
    generator that draws one clean prototype per class (such a classifier is a nearest-prototype
    rule, and early in training it beats diverse but rougher samples), which is useless for
    augmentation; `value` therefore counts CAS only for the share of classes that are not collapsed.
    """

    cas: float
    collapsed: int
    classes: int

    @property
    def value(self) -> float:
        return penalised_utility(self.cas, self.collapsed, self.classes)


@dataclass(frozen=True)
class TrialOutcome:
    """One trial's rung readings (step, objective, utility); `pruned` when the pruner stopped it."""

    rungs: tuple[tuple[int, float, Utility], ...]
    pruned: bool
    seconds: float


@dataclass
class _Data:
    loaded: LoadedDataset
    dataset: DatasetRef | Path
    features: DatasetFeatures
    val: tuple[torch.Tensor, torch.Tensor]
    history: Path | None
    study_name: str


def measure_utility(generator: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor], per_class: int,
                    steps: int, seed: int, collapse_spread: float) -> Utility:
    """CAS on val (a classifier trained for `steps` on `per_class` samples per class) and the collapsed classes of those samples."""
    num_classes = int(generator.shape.num_classes)  # type: ignore[union-attr]
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = sample(generator, labels, seed)  # (N, C, H, W) in [-1, 1]
    train_cfg = TrainConfig(steps=steps, device="cpu", precision="float32")
    trained = train_classifier(ArchSpec(), (images, labels), None, num_classes, train_cfg, seed=seed)
    ratio = within_class_spread(images, labels, num_classes) / within_class_spread(*val, num_classes)
    collapsed = int((ratio < collapse_spread).sum())  # NaN (a class without 2 val images) counts as not collapsed
    return Utility(accuracy(trained.model, *val), collapsed, num_classes)


def synthetic_utility(generator: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor], per_class: int,
                      steps: int, seed: int) -> float:
    """CAS on val: accuracy on real val images of a classifier trained for `steps` on `per_class` samples per class."""
    return measure_utility(generator, val, per_class, steps, seed, collapse_spread=0.0).cas


class _RungCallback:
    """GAN-training callback: at each rung's checkpoint, measure the utility and ask the pruner."""

    def __init__(self, cfg: TuneConfig, val: tuple[torch.Tensor, torch.Tensor], use_ema: bool,
                 report: Callable[[int, float], None] | None) -> None:
        self.cfg, self.val, self.use_ema, self.report = cfg, val, use_ema, report
        self.rungs = set(cfg.rungs())
        self.readings: list[tuple[int, float, Utility]] = []

    def on_checkpoint(self, step: int, path: Path) -> None:
        if step not in self.rungs or any(done == step for done, _, _ in self.readings):
            return
        generator, _ = load_generator(path, use_ema=self.use_ema, device="cpu")
        utility = measure_utility(generator, self.val, self.cfg.synthetic_per_class, self.cfg.classifier_steps, self.cfg.seed,
                                  self.cfg.base.collapse_spread)
        objective = utility.value if self.cfg.collapse_penalty else utility.cas
        self.readings.append((step, objective, utility))
        log.debug("step %d: CAS on val %.4f, %d of %d classes collapsed, objective %.4f", step, utility.cas,
                  utility.collapsed, utility.classes, objective)
        if self.report is not None and step < self.cfg.max_steps:  # a trial that trained every step is complete
            self.report(step, objective)


def run_trial(number: int, params: dict[str, Any], data: _Data, cfg: TuneConfig, out: Path,
              prune: TrialPruning | None) -> TrialOutcome:
    """Train one trial's GAN with rung readings; append its history record (pruned or not)."""
    started = time.perf_counter()
    gan_cfg = to_gan_config(params, cfg.base, cfg.max_steps).model_copy(
        update={"checkpoint_every": cfg.min_steps, "monitor_every": cfg.min_steps, "grid_every": None, "seed": cfg.seed})
    callback = _RungCallback(cfg, data.val, gan_cfg.ema_decay is not None,
                             prune.reporter("step", "CAS on val") if prune else None)
    folder = TunePaths(out).trial(number)
    pruned = False
    try:
        result = train_gan(data.dataset, gan_cfg, folder, callbacks=[callback])
        steps, device, best_step = result.steps, result.device, result.best_step
    except optuna.TrialPruned:
        pruned, steps, device, best_step = True, callback.readings[-1][0], str(gan_cfg.device), None
    seconds = time.perf_counter() - started
    if data.history is not None:
        metrics = pq.read_table(GanPaths.under(folder).metrics).to_pylist()
        append_record(data.history, make_record(
            data.features, gan_cfg.model_copy(update={"steps": steps}), metrics, origin="tune", steps=steps,
            seconds=seconds, device=device, best_step=best_step, pruned=pruned,
            cas_val=None if pruned else callback.readings[-1][2].cas, study=data.study_name, trial=number))
    return TrialOutcome(tuple(callback.readings), pruned, seconds)


LEARNED_SCHEDULE = "learned schedule"  # warm_from of the trial with the history's learned schedule


def learned_schedule_params(data: _Data, cfg: TuneConfig, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point of the space of `cfg.base` with the schedule learned from the history rows; None when it has none."""
    found = observations(rows)
    if not found:
        return None
    base = cfg.base.model_copy(update={"schedule": "fixed"})
    learned = schedule_for(data.features, cfg.max_steps, found, str(data.history))
    log.info("warm start: learned schedule η0 %.2f x default, η1 %.2f from %d past run(s)", learned.multiplier,
             learned.lr_decay_rate, len(found))
    return from_gan_config(base.model_copy(update=learned.settings()), data.features.height, data.features.width)


def warm_start(study: optuna.Study, data: _Data, cfg: TuneConfig) -> list[Neighbour]:
    """Enqueue the learned schedule on the base config, then the best configs of the nearest past datasets
    (this dataset's own records too) in `warm_order`."""
    if not cfg.warm_start or data.history is None or not data.history.exists():
        return []
    rows = history_rows(data.history)
    neighbours = nearest_datasets(data.features, rows, cfg.warm_datasets, cfg.warm_per_dataset)
    queued: list[str] = []
    schedule = learned_schedule_params(data, cfg, rows) if cfg.warm_schedule else None
    if schedule is not None:
        queued.append(json.dumps(schedule, sort_keys=True))
        study.enqueue_trial(schedule, user_attrs={"warm_from": LEARNED_SCHEDULE})
    for neighbour, config in warm_order(neighbours):
        params = from_gan_config(config, data.features.height, data.features.width)
        key = json.dumps(params, sort_keys=True)
        if key in queued or len(queued) >= cfg.n_trials:
            continue
        queued.append(key)
        study.enqueue_trial(params, user_attrs={"warm_from": neighbour.features.dataset_path})
    log.info("warm start: %d configs (learned schedule: %s) from %d nearest datasets", len(queued),
             "yes" if schedule is not None else "no", len(neighbours))
    return neighbours


def judge_from(trial: optuna.Trial, cfg: TuneConfig) -> int:
    """The first GAN step at which `trial` may be pruned: past `cfg.warm_unpruned_rungs` rungs for a warm-start trial
    (max_steps, i.e. never, for "all")."""
    rungs = cfg.rungs()
    if not cfg.warm_unpruned_rungs or not trial.user_attrs.get("warm_from"):
        return 0
    spared = len(rungs) - 1 if cfg.warm_unpruned_rungs == "all" else cfg.warm_unpruned_rungs
    return rungs[min(spared, len(rungs) - 1)]  # the last rung is max_steps, where a trial is complete, not judged


def tune_gan(dataset: DatasetRef | str | Path, cfg: TuneConfig, out: str | Path, executor: Executor | None = None,
             on_trial: Callable[[dict[str, Any]], None] | None = None) -> TuneResult:
    """Run (or resume) the study; write `out/tune/` (study.db, trials, trials.parquet, best_gan.yaml, best_pipeline.yaml)."""
    started = time.perf_counter()
    loaded = read_dataset(dataset)
    val = load_tensors(loaded, "val", source="real")
    if len(val[0]) == 0:
        raise DataError(f"dataset {loaded.path}: no real rows with split 'val'; tuning scores each trial on them (ingest with val_fraction > 0)")
    history = history_path(cfg.history)
    check_history(history)
    root = TunePaths.under(out).root
    data = _Data(loaded, dataset if isinstance(dataset, DatasetRef) else Path(dataset), dataset_features(loaded), val,
                 history, f"tune-{loaded.content_hash[:12]}-seed{cfg.seed}")
    study = open_study(cfg, root, data.study_name, loaded.content_hash)
    done = [t for t in study.get_trials(deepcopy=False) if counts(t)]
    if not study.get_trials(deepcopy=False):
        warm_start(study, data, cfg)
    before = max((trial_row(t)["finished_after"] for t in done), default=0.0)  # a resumed study's clock goes on

    def clock() -> float:
        return before + time.perf_counter() - started

    work = TrialWork(role=ROLE, name="tune_trial", draw=suggest, task=run_trial,
                     args=lambda trial, params, prune: (trial.number, params, data, cfg, root, prune),
                     outcome=lambda trial, params, result: _outcome(trial, result, clock),
                     label=lambda trial, params: f"tune_trial {trial.number}", judge_from=lambda trial: judge_from(trial, cfg))
    with cpu_threads(cfg.cpu_threads):
        run_trials(study, work, cfg.n_trials, cfg.parallel, executor, workers=cfg.parallel,
                   on_trial=None if on_trial is None else lambda trial: on_trial(trial_row(trial)))
    return _finish(study, data, cfg, root, started, resumed=len(done))


def _outcome(trial: optuna.Trial, outcome: TrialOutcome | Exception, clock: Callable[[], float]) -> Outcome:
    """A trial's outcome as the study records it: its rung readings, timings, and state."""
    if isinstance(outcome, Exception):  # a trial that raises (e.g. a diverging GAN) is recorded and the study goes on
        return Outcome.failed(outcome, f"tuning trial {trial.number}", finished_after=clock())
    attrs = {"rung_steps": [s for s, _, _ in outcome.rungs], "rung_utility": [o for _, o, _ in outcome.rungs],
             "rung_cas": [u.cas for _, _, u in outcome.rungs], "rung_collapsed": [u.collapsed for _, _, u in outcome.rungs],
             "seconds": outcome.seconds, "finished_after": clock()}
    readings = [(step, objective) for step, objective, _ in outcome.rungs]
    if outcome.pruned:
        return Outcome("pruned", attrs=attrs, readings=readings)
    return Outcome("complete", [outcome.rungs[-1][1]], attrs, readings)


def _finish(study: optuna.Study, data: _Data, cfg: TuneConfig, root: Path, started: float, resumed: int) -> TuneResult:
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False) if counts(t)]
    trials_path = write_rows(rows, TRIALS_SCHEMA, TunePaths(root).trials)
    complete = [row for row in rows if row["state"] == "complete"]
    if not complete:
        raise DataError(f"no tuning trial finished (see {trials_path}: {sum(r['state'] == 'failed' for r in rows)} failed); "
                        "raise n_trials or check the errors recorded there")
    best = max(complete, key=lambda row: (row["utility"], -row["number"]))
    best_cfg = to_gan_config(json.loads(best["params"]), cfg.base, cfg.max_steps).model_copy(update={"seed": cfg.seed})
    dumped = best_cfg.model_dump(mode="json")
    gan_path = atomic_write_text(TunePaths(root).best_gan, yaml.safe_dump(dumped, sort_keys=False))
    pipeline_path = atomic_write_text(TunePaths(root).best_pipeline, yaml.safe_dump({"gan": dumped}, sort_keys=False))
    warm = [row["warm_from"] for row in rows if row["warm_from"]]
    result = TuneResult(
        best_trial=best["number"], best_utility=best["utility"], best_config_path=str(gan_path),
        pipeline_config_path=str(pipeline_path), trials_path=str(trials_path), trials=len(rows),
        pruned=sum(row["state"] == "pruned" for row in rows), failed=sum(row["state"] == "failed" for row in rows),
        warm_trials=len(warm), warm_from=sorted(set(warm)), resumed_trials=resumed,
        seconds=round(time.perf_counter() - started, 3),
    )
    atomic_write_json(TunePaths(root).summary, {"config": cfg.model_dump(mode="json"), "result": result.model_dump(mode="json")})
    return result
