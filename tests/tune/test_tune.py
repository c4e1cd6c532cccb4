"""The tuning study: its utility objective, pruning, determinism with threads, warm start, outputs, CLI."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from torch import nn
from tunehelpers import TINY_GAN, make_dataset
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.configbase import load_config
from ganaug.data.tensors import load_tensors
from ganaug.gan import GanConfig
from ganaug.gan.networks import ImageShape
from ganaug.store import read_dataset
from ganaug.tune import study as study_module
from ganaug.tune.config import TuneConfig, from_gan_config
from ganaug.tune.history import dataset_features, history_rows
from ganaug.tune.schedule import observations, schedule_for
from ganaug.tune.study import LEARNED_SCHEDULE, measure_utility, synthetic_utility, tune_gan

TINY_TUNE: dict[str, Any] = {"min_steps": 2, "max_steps": 8, "reduction_factor": 2, "synthetic_per_class": 8,
                             "classifier_steps": 20, "base": TINY_GAN}


def tune_cfg(tmp_path: Path, **changes: Any) -> TuneConfig:
    return TuneConfig.model_validate({**TINY_TUNE, "history": str(tmp_path / "history.parquet"), **changes})


class TemplateGenerator(nn.Module):
    """Stands in for a trained generator: each class's mean val image plus noise (or pure noise)."""

    def __init__(self, templates: torch.Tensor | None, shape: ImageShape) -> None:
        super().__init__()
        self.shape, self.latent_dim = shape, 4
        self.templates = templates
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.templates is None:  # images that depend on the noise only, not on the class
            projection = torch.randn(self.latent_dim, self.shape.channels * self.shape.height * self.shape.width,
                                     generator=torch.Generator().manual_seed(0))
            return torch.tanh(noise @ projection).view(len(labels), self.shape.channels, self.shape.height, self.shape.width)
        return (self.templates[labels] + 0.2 * noise[:, :1, None, None]).clamp(-1, 1) * self.scale


def test_utility_scores_a_faithful_generator_far_above_noise(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "d.parquet", classes=4, train_per_class=8)
    train_x, train_y = load_tensors(ref, "train")
    val = load_tensors(ref, "val")
    shape = ImageShape(1, 8, 8, 4)
    templates = torch.stack([train_x[train_y == c].mean(0) for c in range(4)])  # (4, 1, 8, 8)
    faithful = synthetic_utility(TemplateGenerator(templates, shape), val, per_class=8, steps=40, seed=0)
    noise = synthetic_utility(TemplateGenerator(None, shape), val, per_class=8, steps=40, seed=0)
    assert faithful >= 0.9
    assert noise <= 0.5  # chance is 0.25
    assert faithful - noise >= 0.4


class ExampleGenerator(nn.Module):
    """Draws one of its class's training images, chosen by the noise: as varied as the data (prototype=True: always the first)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, shape: ImageShape, prototype: bool) -> None:
        super().__init__()
        self.shape, self.latent_dim, self.prototype = shape, 4, prototype
        self.members = [images[labels == c] for c in range(shape.num_classes)]
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        picks = [0 if self.prototype else int(abs(float(z[0])) * 1000) % len(self.members[int(c)]) for z, c in zip(noise, labels)]
        return torch.stack([self.members[int(c)][i] for i, c in zip(picks, labels)]) * self.scale


def test_utility_counts_cas_only_for_classes_whose_samples_are_not_collapsed(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "d.parquet", classes=4, train_per_class=8)
    train = load_tensors(ref, "train")
    val = load_tensors(ref, "val")
    shape = ImageShape(1, 8, 8, 4)
    varied = measure_utility(ExampleGenerator(*train, shape, prototype=False), val, per_class=8, steps=40, seed=0, collapse_spread=0.3)
    prototypes = measure_utility(ExampleGenerator(*train, shape, prototype=True), val, per_class=8, steps=40, seed=0, collapse_spread=0.3)
    assert varied.collapsed == 0 and varied.value == varied.cas >= 0.7
    # one image per class: a fair CAS (a nearest-prototype rule), but every class collapsed, so no utility
    assert prototypes.cas >= 0.5 and prototypes.collapsed == 4 and prototypes.value == 0.0
    assert measure_utility(ExampleGenerator(*train, shape, prototype=True), val, 8, 40, 0, collapse_spread=0.0).collapsed == 0


def test_study_writes_the_best_config_for_train_and_run_and_a_history_record_per_trial(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    cfg = tune_cfg(tmp_path, n_trials=4, pruner="none", seed=4)
    result = tune_gan(ref, cfg, tmp_path / "run")
    trials = pq.read_table(result.trials_path).to_pylist()
    assert [t["state"] for t in trials] == ["complete"] * 4 and result.pruned == 0
    assert all(t["rung_steps"] == [2, 4, 8] for t in trials)
    best = max(trials, key=lambda t: t["utility"])
    assert (result.best_trial, result.best_utility) == (best["number"], best["utility"])
    tuned = load_config(GanConfig, result.best_config_path)
    assert from_gan_config(tuned, 8, 8) == pytest.approx(json.loads(best["params"]))
    assert (tuned.steps, tuned.batch_size, tuned.device, tuned.seed) == (8, 8, "cpu", 4)  # the study's seed drives the GANs
    assert load_config(GanConfig, None, None) != tuned
    from ganaug.pipeline import PipelineConfig

    assert load_config(PipelineConfig, result.pipeline_config_path).gan == tuned
    records = history_rows(tmp_path / "history.parquet")
    assert [(r["origin"], r["trial"], r["steps"], r["config"]["seed"]) for r in records] == [("tune", t, 8, 4) for t in range(4)]
    assert [r["cas_val"] for r in records] == pytest.approx([t["rung_cas"][-1] for t in trials])
    for t in trials:  # the objective: CAS times the share of classes not collapsed, at every rung
        assert len(t["rung_cas"]) == len(t["rung_collapsed"]) == 3 and t["utility"] == t["rung_utility"][-1]
        assert t["rung_utility"] == pytest.approx([cas * (1 - k / 3) for cas, k in zip(t["rung_cas"], t["rung_collapsed"])])
    summary = json.loads((tmp_path / "run" / "tune" / "tune.json").read_text())
    assert summary["result"]["best_trial"] == result.best_trial


def test_threads_give_the_same_trials_and_pruned_trials_trailed_at_their_rung(tmp_path: Path) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    outcomes = []
    for attempt in range(2):
        cfg = tune_cfg(tmp_path / f"h{attempt}", n_trials=8, parallel=2, seed=5)
        with ThreadPoolExecutor(2) as pool:
            result = tune_gan(ref, cfg, tmp_path / f"out{attempt}", executor=pool)
        outcomes.append(pq.read_table(result.trials_path).select(["number", "state", "params", "rung_utility"]).to_pylist())
    assert outcomes[0] == outcomes[1]
    trials = outcomes[0]
    pruned = [t for t in trials if t["state"] == "pruned"]
    assert pruned, "successive halving stopped no trial"
    steps = [2, 4, 8]
    for trial in pruned:
        rung = len(trial["rung_utility"]) - 1
        earlier = [t["rung_utility"][rung] for t in trials
                   if t["number"] < trial["number"] - trial["number"] % 2 and len(t["rung_utility"]) > rung]
        assert earlier and trial["rung_utility"][rung] < max(earlier), f"trial {trial['number']} pruned at step {steps[rung]}"


def test_parallel_trials_train_at_once_by_default_and_worker_processes_give_the_same_trials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = make_dataset(tmp_path / "run" / "dataset.parquet")
    threads: set[str] = set()
    run_trial = study_module.run_trial

    def recording(*args: Any) -> Any:
        threads.add(threading.current_thread().name)
        return run_trial(*args)

    monkeypatch.setattr(study_module, "run_trial", recording)
    by_default = tune_gan(ref, tune_cfg(tmp_path / "h0", n_trials=4, parallel=2, seed=5), tmp_path / "out0")
    assert len(threads) == 2 and all(name.startswith("ganaug-tune_trial") for name in threads), threads
    monkeypatch.undo()
    # one GIL per trial (the GPU benchmark's workers); torch on one thread there as in the study's own process
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:
        pooled = tune_gan(ref, tune_cfg(tmp_path / "h1", n_trials=4, parallel=2, seed=5), tmp_path / "out1", executor=pool)
    columns = ["number", "state", "params", "rung_utility"]
    assert pq.read_table(pooled.trials_path).select(columns).to_pylist() == \
        pq.read_table(by_default.trials_path).select(columns).to_pylist()


def test_warm_start_enqueues_the_nearest_datasets_best_configs_and_cold_does_not(tmp_path: Path) -> None:
    past = make_dataset(tmp_path / "past" / "dataset.parquet", seed=1)
    far = make_dataset(tmp_path / "far" / "dataset.parquet", channels=3, size=16, classes=5, train_per_class=20, seed=2)
    tune_gan(past, tune_cfg(tmp_path, n_trials=3, pruner="none"), tmp_path / "past")
    tune_gan(far, tune_cfg(tmp_path, n_trials=2, pruner="none", base={**TINY_GAN, "batch_size": 4}), tmp_path / "far")
    records = [r for r in history_rows(tmp_path / "history.parquet") if r["dataset_hash"] == past.content_hash]
    _, best = max(enumerate(records), key=lambda pair: (pair[1]["cas_val"], pair[0]))  # a tie goes to the later record
    best_past = GanConfig.model_validate(best["config"])
    new = make_dataset(tmp_path / "new" / "dataset.parquet", seed=3, train_per_class=9)
    frozen = history_rows(tmp_path / "history.parquet")  # the history the warm study starts from
    shutil.copy(tmp_path / "history.parquet", tmp_path / "frozen.parquet")
    warm = tune_gan(new, tune_cfg(tmp_path, n_trials=3, warm_datasets=1, warm_per_dataset=1, pruner="none"), tmp_path / "new")
    trials = pq.read_table(warm.trials_path).to_pylist()
    assert warm.warm_trials == 2 and warm.warm_from == sorted([LEARNED_SCHEDULE, str(past.file)])
    assert [t["warm_from"] for t in trials] == [LEARNED_SCHEDULE, str(past.file), None]
    learned = schedule_for(dataset_features(read_dataset(new)), 8, observations(frozen), "h")
    base = GanConfig.model_validate(TINY_GAN).model_copy(update=learned.settings())
    assert json.loads(trials[0]["params"]) == pytest.approx(from_gan_config(base, 8, 8))  # the base config, learned rates
    assert json.loads(trials[1]["params"]) == pytest.approx(from_gan_config(best_past, 8, 8))
    plain = tune_gan(new, tune_cfg(tmp_path, n_trials=2, warm_datasets=1, warm_per_dataset=1, pruner="none",
                                   warm_schedule=False, history=str(tmp_path / "frozen.parquet")), tmp_path / "plain")
    assert [t["warm_from"] for t in pq.read_table(plain.trials_path).to_pylist()] == [str(past.file), None]
    cold = tune_gan(new, tune_cfg(tmp_path, n_trials=2, warm_start=False, pruner="none"), tmp_path / "cold")
    cold_trials = pq.read_table(cold.trials_path).to_pylist()
    assert cold.warm_trials == 0 and all(t["warm_from"] is None for t in cold_trials)
    assert json.loads(cold_trials[0]["params"]) != json.loads(trials[0]["params"])


def test_cli_tunes_and_prints_how_to_use_the_result(tmp_path: Path) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    config = tmp_path / "tune.yaml"
    config.write_text(json.dumps({**TINY_TUNE, "n_trials": 2}))
    history = tmp_path / "h.parquet"
    result = CliRunner().invoke(app, ["tune", "--runs-root", str(tmp_path / "runs"), "-c", str(config),
                                      "--history", str(history), "--cold"])
    assert result.exit_code == 0, result.output
    best = tmp_path / "runs" / "r1" / "tune" / "best_gan.yaml"
    assert best.is_file() and f"-c {best}" in " ".join(result.output.split())
    assert "ganaug train --run-dir" in result.output and len(history_rows(history)) == 2
    assert "collapsed)" in result.output and "CAS on val x share of classes not collapsed" in result.output
    result = CliRunner().invoke(app, ["tune", "--runs-root", str(tmp_path / "runs"), "-c", str(config),
                                      "--history", str(history), "--cold", "--cas-only", "--no-resume"])
    assert result.exit_code == 0, result.output  # another objective: the stored study is replaced, not resumed
    trials = pq.read_table(tmp_path / "runs" / "r1" / "tune" / "trials.parquet").to_pylist()
    assert all(t["rung_utility"] == t["rung_cas"] for t in trials)  # --cas-only: the objective is CAS alone


@pytest.mark.parametrize(("options", "message"), [
    (["--min-steps", "3", "--max-steps", "10"], "max_steps"),
    (["--pruner", "median"], "pruner"),
    (["--trials", "0"], "n_trials"),
    (["--device", "tpu"], "device"),
])
def test_cli_rejects_bad_options_with_exit_2_and_writes_nothing(tmp_path: Path, options: list[str], message: str) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    result = CliRunner().invoke(app, ["tune", "--runs-root", str(tmp_path / "runs"), *options])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "r1" / "tune").exists()


def test_cli_refuses_a_damaged_history_file_and_leaves_it_alone(tmp_path: Path) -> None:
    make_dataset(tmp_path / "runs" / "r1" / "dataset.parquet")
    history = tmp_path / "h.parquet"
    history.write_bytes(b"not parquet at all")
    result = CliRunner().invoke(app, ["tune", "--runs-root", str(tmp_path / "runs"), "--history", str(history)])
    assert result.exit_code == 2 and str(history) in " ".join(result.output.split())
    assert history.read_bytes() == b"not parquet at all"
    assert not (tmp_path / "runs" / "r1" / "tune").exists()
