"""The learned default schedule: observations from the history, the FTRL/ridge model, its quality, the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tunehelpers import TINY_GAN, make_dataset
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.errors import ConfigError, DataError
from ganaug.gan import GanConfig
from ganaug.store import read_dataset
from ganaug.tune.history import HISTORY_ENV, DatasetFeatures, append_record, dataset_features, history_rows, make_record
from ganaug.tune.schedule import (
    DEFAULT_D_LR,
    DEFAULT_G_LR,
    DEFAULT_STRENGTH,
    ScheduleModel,
    choose_strength,
    fit_schedule,
    learned_schedule,
    observations,
    schedule_features,
    schedule_for,
    with_learned_schedule,
)

BASE = DatasetFeatures("base", "base.parquet", 1000, 10, 28, 28, 1, (100,) * 10, 0.2, 0.3, (0.1,) * 32)


def dataset(name: str, per_class: int, mean: float = 0.2) -> DatasetFeatures:
    return dataclasses.replace(BASE, dataset_hash=name, dataset_path=f"{name}.parquet", images=10 * per_class,
                               class_counts=(per_class,) * 10, pixel_mean=mean)


def run(features: DatasetFeatures, multiplier: float, decay: float, cas_val: float | None = 0.8, pruned: bool = False,
        schedule: str | None = None, steps: int = 10) -> dict[str, Any]:
    cfg = GanConfig(g_lr=DEFAULT_G_LR * multiplier, d_lr=DEFAULT_D_LR * multiplier, lr_decay_rate=decay if decay else 2.0,
                    lr_schedule=schedule or ("exponential" if decay else "constant"))
    record = make_record(features, cfg, [], origin="tune", steps=steps, seconds=1.0, device="cpu", cas_val=cas_val,
                         pruned=pruned, study="s", trial=0)
    return {**record, "config": json.loads(record["gan_config"])}


def test_online_updates_give_the_closed_form_ridge_solution_pulled_to_the_default() -> None:
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(7, 6)), rng.normal(size=(7, 2)), rng.uniform(0.2, 1.0, size=7)
    model = ScheduleModel(strength=0.5)
    assert model.predict(x[0]) == (0.0, 0.0)  # no data: the fixed default (multiplier 1, no decay)
    for features, target, weight in zip(x, y, w):
        model.observe(features, target[0], target[1], weight)
    design = np.hstack([np.ones((7, 1)), x])
    # argmin Σ w ||y - θᵀx||² + θᵀΛθ as one least-squares problem (the prior is θ = 0; Λ = diag(1, 0.5, ...))
    stacked = np.vstack([design * np.sqrt(w)[:, None], np.diag(np.sqrt([1.0] + [0.5] * 6))])
    expected, *_ = np.linalg.lstsq(stacked, np.vstack([y * np.sqrt(w)[:, None], np.zeros((7, 2))]), rcond=None)
    assert np.allclose(model.coefficients(), expected)
    strong = ScheduleModel(strength=1e6, intercept_strength=1e6)
    for features, target, weight in zip(x, y, w):
        strong.observe(features, target[0], target[1], weight)
    assert np.allclose(strong.predict(x[0]), (0.0, 0.0), atol=1e-4)  # a strong regulariser keeps the default
    flat = ScheduleModel(strength=1e6)
    for features, target, weight in zip(x, y, w):
        flat.observe(features, target[0], target[1], weight)
    mean = (y * w[:, None]).sum(0) / (w.sum() + 1.0)  # no slopes: the weighted mean, the default counted once
    assert np.allclose(flat.predict(x[0]), mean, atol=1e-4) and np.allclose(flat.predict(x[1]), mean, atol=1e-4)


def test_observations_take_each_datasets_best_usable_runs_with_their_targets() -> None:
    small, large = dataset("small", 10), dataset("large", 500)
    rows = [
        run(small, 2.0, 3.0, cas_val=0.6),
        run(small, 1.0, 0.0, cas_val=0.9),
        run(small, 4.0, 1.0, cas_val=0.95, pruned=True),  # pruned: never
        run(small, 0.5, 1.0, cas_val=0.99, schedule="cosine"),  # not lr_0 exp(-k t)
        run(small, 3.0, 5.0, cas_val=0.3),  # fourth best of three
        run(small, 1.5, 2.0, cas_val=0.7),
        run(large, 1.0, 0.0, cas_val=None),  # no val utility
    ]
    found = observations(rows, per_dataset=3)
    assert [(o.utility, round(math.exp(o.log_multiplier), 6), o.decay) for o in found] == [
        (0.6, 2.0, 3.0), (0.9, 1.0, 0.0), (0.7, 1.5, 2.0)]  # history order
    assert all(o.dataset_hash == "small" for o in found)
    assert observations(rows, exclude=frozenset({"small"})) == []


def test_better_runs_weigh_more() -> None:
    good, poor = dataset("good", 100), dataset("poor", 100, mean=0.21)
    new = dataset("new", 100)
    first = schedule_for(new, 10, observations([run(good, 3.0, 4.0, cas_val=0.9), run(poor, 0.5, 0.0, cas_val=0.1)]), "h", 100.0)
    swapped = schedule_for(new, 10, observations([run(good, 3.0, 4.0, cas_val=0.1), run(poor, 0.5, 0.0, cas_val=0.9)]), "h", 100.0)
    assert first.lr_decay_rate > 1.5 and first.multiplier > 1.5  # (0.9 x 4 + 0.1 x 0 + 1 x 0 for the default) / 2
    assert swapped.lr_decay_rate < 0.3 and swapped.multiplier < 1.0


def test_what_short_trainings_taught_carries_less_to_a_long_one() -> None:
    """Runs of 100 steps liked 3x the default rate: a 100-step training gets most of that, a 3000-step one little."""
    found = observations([run(BASE, 3.0, 2.0, cas_val=0.9, steps=100), run(BASE, 3.2, 2.5, cas_val=0.85, steps=100)])
    short = schedule_for(BASE, 100, found, "h")
    long = schedule_for(BASE, 3000, found, "h")
    assert 2.5 < short.multiplier < 3.2 and 1.6 < short.lr_decay_rate < 2.5
    assert 1.0 < long.multiplier < 1.3 and long.lr_decay_rate < 0.5
    assert (short.steps, long.steps) == (100, 3000)
    assert short.steps_outside() is None and long.steps_outside() == (100, 100)


def lodo_errors(history: list[DatasetFeatures], best: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Leave-one-dataset-out squared error of (log η0, η1) of the learned schedule and of two baselines."""
    errors = {"learned": 0.0, "default": 0.0, "mean": 0.0}
    rng = np.random.default_rng(1)
    rows = [run(f, math.exp(m + rng.normal(0, 0.1)), max(d + rng.normal(0, 0.3), 0.01), cas_val=float(rng.uniform(0.6, 0.9)))
            for f in history for m, d in [best[f.dataset_hash]] * 3]
    for held in history:
        found = observations(rows, exclude=frozenset({held.dataset_hash}))
        truth = np.array(best[held.dataset_hash])
        model = fit_schedule(found)
        errors["learned"] += float(np.sum((np.array(model.predict(schedule_features(held, 10))) - truth) ** 2))
        errors["default"] += float(np.sum(truth**2))
        weights = np.array([o.utility for o in found])
        mean = np.array([[o.log_multiplier, o.decay] for o in found]).T @ weights / weights.sum()
        errors["mean"] += float(np.sum((mean - truth) ** 2))
    return errors


def test_learned_schedule_predicts_a_held_out_datasets_best_better_than_the_default_and_the_mean() -> None:
    """Best schedules that follow dataset size (smaller data: lower η0, faster decay) are learned across datasets."""
    sizes = [10, 20, 50, 100, 200, 500, 1000, 2000]
    history = [dataset(f"d{n}", n, mean=0.15 + 0.01 * (i % 3)) for i, n in enumerate(sizes)]
    best = {f.dataset_hash: (0.3 * (math.log(f.images / 10) - math.log(100)), 2.0 - 0.6 * (math.log(f.images / 10) - math.log(100)))
            for f in history}
    errors = lodo_errors(history, best)
    assert errors["learned"] < 0.25 * errors["default"]
    assert errors["learned"] < 0.35 * errors["mean"]


def test_learned_config_names_its_runs_and_refuses_options_it_sets(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "d.parquet")
    features = dataset_features(read_dataset(ref))
    history = tmp_path / "h.parquet"
    for multiplier, decay in ((2.0, 3.0), (2.5, 2.0)):
        record = run(features, multiplier, decay, cas_val=0.9)
        append_record(history, {k: v for k, v in record.items() if k != "config"})
    cfg, learned = with_learned_schedule(GanConfig(**TINY_GAN), ref, history)
    assert [o.dataset_path for o in learned.observations] == [features.dataset_path] * 2
    assert 1.0 < learned.multiplier < 2.5 and 0.0 < learned.lr_decay_rate < 3.0  # between the default and the runs
    assert (cfg.g_lr, cfg.d_lr) == pytest.approx((DEFAULT_G_LR * learned.multiplier, DEFAULT_D_LR * learned.multiplier))
    assert (cfg.lr_schedule, cfg.lr_decay_rate, cfg.steps) == ("exponential", learned.lr_decay_rate, TINY_GAN["steps"])
    assert cfg.schedule == "learned"
    with pytest.raises(ConfigError, match="the config also gives g_lr=0.001, lr_schedule=cosine"):
        with_learned_schedule(GanConfig(**TINY_GAN, g_lr=1e-3, lr_schedule="cosine"), ref, history)


def test_empty_foreign_or_unusable_history_is_an_error_naming_the_file(tmp_path: Path) -> None:
    features = dataset("x", 10)
    missing = tmp_path / "none.parquet"
    with pytest.raises(DataError, match=f"the run history {missing} does not exist"):
        learned_schedule(features, 10, missing)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    with pytest.raises(DataError, match=f"history file {foreign} is not a ganaug GAN history"):
        learned_schedule(features, 10, foreign)
    pruned_only = tmp_path / "pruned.parquet"
    record = run(features, 1.0, 0.0, pruned=True)
    append_record(pruned_only, {k: v for k, v in record.items() if k != "config"})
    with pytest.raises(DataError, match=f"the run history {pruned_only} has 1 record"):
        learned_schedule(features, 10, pruned_only)
    with pytest.raises(DataError, match="recording is off"):
        learned_schedule(features, 10, None)


def test_cli_train_with_the_learned_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    history = tmp_path / "h.parquet"
    monkeypatch.setenv(HISTORY_ENV, str(history))
    config = tmp_path / "gan.yaml"
    config.write_text(json.dumps(TINY_GAN))
    command = ["train", "--runs-root", str(tmp_path / "runs"), "-c", str(config), "--schedule", "learned"]
    empty = CliRunner().invoke(app, command)
    assert empty.exit_code == 2 and str(history) in " ".join(empty.output.split())
    assert not (tmp_path / "runs" / "r1" / "gan").exists()
    past = make_dataset(tmp_path / "past.parquet", seed=4)
    record = run(dataset_features(read_dataset(past)), 3.0, 2.0, cas_val=0.85)
    append_record(history, {k: v for k, v in record.items() if k != "config"})
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert f"learned schedule from 1 past run(s) on 1 dataset(s) in {history}" in result.output
    assert f"  {tmp_path / 'past.parquet'}  s trial 0, 10 steps, weight 0.850: η0 3.00 x default, η1 2.00" in result.output
    assert "extrapolated" not in result.output  # 6 steps, learned from 10
    trained = history_rows(history)[-1]  # the training's own record: the learned rates and schedule
    assert trained["dataset_hash"] == ref.content_hash and trained["config"]["lr_schedule"] == "exponential"
    assert trained["config"]["g_lr"] > DEFAULT_G_LR and 1.0 < trained["config"]["lr_decay_rate"] < 2.5
    clash = CliRunner().invoke(app, [*command, "--g-lr", "0.001"])
    assert clash.exit_code == 2 and "the config also gives g_lr" in clash.output
    bad = CliRunner().invoke(app, [*command[:-1], "sometimes"])
    assert bad.exit_code == 2 and "schedule" in bad.output and "'fixed' or 'learned'" in bad.output


def test_strength_is_chosen_by_leaving_datasets_out() -> None:
    """Schedules that follow the features get a weak pull to the default; schedules that do not, a strong one."""
    sizes = [10, 20, 50, 100, 200, 500, 1000, 2000]
    history = [dataset(f"d{n}", n) for n in sizes]
    rng = np.random.default_rng(3)
    lawful = [run(f, math.exp(0.3 * math.log(f.images / 1000)), 2.0 - 0.6 * math.log(f.images / 1000)) for f in history]
    noise = [run(f, math.exp(rng.normal(0, 0.7)), float(rng.uniform(0.1, 5.0))) for f in history for _ in range(2)]
    assert choose_strength(observations(lawful)) <= 0.3
    assert choose_strength(observations(noise)) >= 10.0
    assert choose_strength(observations(lawful[:1])) == DEFAULT_STRENGTH  # one dataset: nothing to hold out


def test_cli_resumed_training_keeps_the_schedule_it_started_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    history = tmp_path / "h.parquet"
    monkeypatch.setenv(HISTORY_ENV, str(history))
    past = dataset_features(read_dataset(make_dataset(tmp_path / "past.parquet", seed=4)))
    append_record(history, {k: v for k, v in run(past, 3.0, 2.0, cas_val=0.85).items() if k != "config"})
    config = tmp_path / "gan.yaml"
    config.write_text(json.dumps({**TINY_GAN, "steps": 3, "checkpoint_every": 3}))
    command = ["train", "--runs-root", str(tmp_path / "runs"), "-c", str(config), "--schedule", "learned"]
    assert CliRunner().invoke(app, command).exit_code == 0
    started = history_rows(history)[-1]["config"]
    for _ in range(3):  # the history moves on: now it would learn a much lower rate
        append_record(history, {k: v for k, v in run(past, 0.3, 0.0, cas_val=0.95).items() if k != "config"})
    resumed = CliRunner().invoke(app, [*command, "--resume", "--steps", "6"])
    assert resumed.exit_code == 0, resumed.output
    assert "resuming with the schedule this training started with" in " ".join(resumed.output.split())
    finished = history_rows(history)[-1]["config"]
    assert finished["steps"] == 6
    assert {k: finished[k] for k in ("g_lr", "d_lr", "lr_schedule", "lr_decay_rate")} == \
        {k: started[k] for k in ("g_lr", "d_lr", "lr_schedule", "lr_decay_rate")}
    fresh = CliRunner().invoke(app, [*command, "--steps", "3"])  # not resuming: learned anew, lower now
    assert fresh.exit_code == 0 and history_rows(history)[-1]["config"]["g_lr"] < started["g_lr"]
