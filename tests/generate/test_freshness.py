"""Inputs made from an older upstream artifact are refused: generate checks the checkpoint's dataset,
evaluate and search check that a run's synthetic.parquet matches its current dataset and GAN."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from genhelpers import tiny_gan_config, write_bar_dataset
from typer.testing import CliRunner

from ganaug.cli import app
from ganaug.config import IngestConfig
from ganaug.errors import CheckpointError, DataError
from ganaug.gan import train_gan
from ganaug.generate import GenerateConfig, generate
from ganaug.runner import run_ingest, synthetic_input
from ganaug.runs import RunFolder
from ganaug.store import DatasetMeta, read_dataset, read_origin, write_dataset

GENERATE = GenerateConfig(mode="per_class", per_class=2, device="cpu")


def _permuted_labels(source: Path, target: Path):
    """The same images with class ids rotated (a different content hash)."""
    real = read_dataset(source)
    meta = DatasetMeta(height=real.meta.height, width=real.meta.width, channels=real.meta.channels,
                       class_names=real.meta.class_names, ingestion_source="test")
    return write_dataset(target, real.images, (real.labels + 1) % 3, real.splits, meta, sample_ids=real.sample_ids)


def test_generate_refuses_a_checkpoint_trained_on_another_dataset(tmp_path, gan_run):
    dataset, gan = gan_run
    other = _permuted_labels(Path(dataset.path), tmp_path / "in" / "dataset.parquet")
    with pytest.raises(CheckpointError, match="was trained on a dataset with content hash .*`ganaug train`"):
        generate(gan, other, GENERATE, tmp_path / "out")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.fixture
def run_with_synthetic(tmp_path):
    """A run folder with dataset.parquet, gan/ and synthetic.parquet made from one another."""
    run = RunFolder.open(tmp_path / "run")
    with torch.random.fork_rng(devices=[]):
        dataset = write_bar_dataset(run.dataset, train_counts=[12, 8, 4])
        gan = train_gan(dataset, tiny_gan_config(), run.root)
    generate(gan, dataset, GENERATE, run.root)
    return run, dataset


def test_fresh_synthetic_is_used(run_with_synthetic):
    run, dataset = run_with_synthetic
    assert synthetic_input(run, dataset).path == str(run.synthetic)


def test_synthetic_of_an_older_gan_is_refused_after_a_retrain(run_with_synthetic):
    run, dataset = run_with_synthetic
    with torch.random.fork_rng(devices=[]):
        train_gan(dataset, tiny_gan_config(seed=5), run.root)
    with pytest.raises(DataError, match="synthetic.parquet is stale: it was sampled from checkpoint .* rerun `ganaug generate`"):
        synthetic_input(run, dataset)
    result = CliRunner().invoke(app, ["evaluate", "--run-dir", str(run.root), "--protocols", "real,augmented",
                                      "--seeds", "1", "--steps", "5", "--device", "cpu", "--no-generative-metrics"])
    assert result.exit_code == 2 and "is stale" in result.output and "ganaug generate" in result.output
    assert not run.evaluation.exists()


def test_synthetic_of_an_older_dataset_is_refused_or_left_out(run_with_synthetic, caplog):
    run, dataset = run_with_synthetic
    shutil.copy(run.dataset, run.root / "old.parquet")
    newer = _permuted_labels(run.root / "old.parquet", run.dataset)
    with pytest.raises(DataError, match="sampled for a dataset with content hash .* rerun `ganaug train` and `ganaug generate`"):
        synthetic_input(run, newer)
    with caplog.at_level(logging.WARNING, logger="ganaug.runner"):
        assert synthetic_input(run, newer, needed=False) is None
    assert "left out" in caplog.text


def test_reingesting_another_dataset_marks_later_stages_stale(tmp_path):
    run = RunFolder.open(tmp_path / "run")
    run_ingest(run, IngestConfig(train_per_class=4, seed=1))
    for stage in ("train_gan", "generate"):
        with run.stage(stage):
            pass
    run_ingest(run, IngestConfig(train_per_class=4, seed=1))  # the same dataset: nothing to invalidate
    assert run.read_manifest()["stages"]["generate"]["status"] == "completed"
    run_ingest(run, IngestConfig(train_per_class=4, seed=2))
    stages = run.read_manifest()["stages"]
    assert stages["train_gan"]["status"] == stages["generate"]["status"] == "stale"
    assert "ingested again" in stages["generate"]["stale_reason"]
    assert stages["ingest"]["notes"]["invalidated"] == ["train_gan", "generate"]


def _evaluate_with(run: RunFolder, synthetic: Path):
    return CliRunner().invoke(app, ["evaluate", "--run-dir", str(run.root), "--synthetic", str(synthetic), "--protocols",
                                    "real,augmented", "--seeds", "1", "--steps", "5", "--device", "cpu",
                                    "--no-generative-metrics"])


def test_a_given_stale_copy_of_the_runs_synthetic_table_is_refused(run_with_synthetic, tmp_path):
    run, dataset = run_with_synthetic
    copy = tmp_path / "kept" / "synthetic.parquet"
    copy.parent.mkdir()
    shutil.copy(run.synthetic, copy)
    assert synthetic_input(run, dataset, copy).path == str(copy)  # still the GAN the run holds: taken
    with torch.random.fork_rng(devices=[]):
        train_gan(dataset, tiny_gan_config(seed=5), run.root)
    with pytest.raises(DataError, match="kept/synthetic.parquet is stale: it was sampled from checkpoint"):
        synthetic_input(run, dataset, copy)
    result = _evaluate_with(run, copy)
    assert result.exit_code == 2 and "is stale" in result.output and not run.evaluation.exists()


def test_a_given_synthetic_table_of_another_dataset_is_refused(run_with_synthetic, tmp_path):
    run, dataset = run_with_synthetic
    other = RunFolder.open(tmp_path / "other")
    with torch.random.fork_rng(devices=[]):
        other_dataset = _permuted_labels(run.dataset, other.dataset)
        generate(train_gan(other_dataset, tiny_gan_config(), other.root), other_dataset, GENERATE, other.root)
    with pytest.raises(DataError, match="was sampled for a dataset with content hash .* label ids may mean other classes"):
        synthetic_input(run, dataset, other.synthetic)
    result = _evaluate_with(run, other.synthetic)
    assert result.exit_code == 2 and "other classes" in result.output and not run.evaluation.exists()


def test_a_given_synthetic_table_of_another_run_on_the_same_dataset_is_taken(run_with_synthetic, tmp_path):
    run, dataset = run_with_synthetic
    other = RunFolder.open(tmp_path / "other")
    other.root.mkdir()
    shutil.copy(run.dataset, other.dataset)
    with torch.random.fork_rng(devices=[]):
        generate(train_gan(dataset, tiny_gan_config(seed=7), other.root), dataset, GENERATE, other.root)
    assert synthetic_input(run, dataset, other.synthetic).path == str(other.synthetic)


def test_where_a_table_was_sampled_is_kept_outside_its_content_hash(tmp_path, gan_run):
    dataset, gan = gan_run
    first, second = (generate(gan, dataset, GENERATE, tmp_path / name) for name in ("run-a", "run-b"))
    assert first.content_hash == second.content_hash
    assert [read_origin(ref.path)["run_id"] for ref in (first, second)] == ["run-a", "run-b"]
