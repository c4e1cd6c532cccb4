"""generate(): counts per mode, the synthetic schema, determinism, quality filter, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from genhelpers import CLASSES, write_bar_dataset

from ganaug.errors import CheckpointError, ConfigError, DataError
from ganaug.generate import GenerateConfig, _Scorer, generate, requested_counts
from ganaug.store import SYNTHETIC_SCHEMA, read_dataset

FAST_FILTER = {"steps": 30, "batch_size": 16, "lr": 0.01, "device": "cpu"}


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def counts(ref) -> list[int]:
    return np.bincount(read_dataset(ref, SYNTHETIC_SCHEMA).labels, minlength=len(CLASSES)).tolist()


def test_ratio_mode_writes_the_synthetic_schema(tmp_path, gan_run):
    dataset, gan = gan_run
    ref = generate(gan, dataset, GenerateConfig(mode="ratio", ratio=0.5, device="cpu"), tmp_path)
    loaded = read_dataset(ref, SYNTHETIC_SCHEMA)
    assert ref.path == str(tmp_path / "synthetic.parquet") and ref.kind == "synthetic" and ref.rows == 12
    assert counts(ref) == [6, 4, 2]
    assert set(loaded.sources) == {"synthetic"} and set(loaded.splits) == {"train"}
    assert loaded.images.dtype == np.uint8 and loaded.images.shape[1:] == (1, 8, 8)
    assert set(loaded.extra_columns["checkpoint_id"]) == {gan.best_checkpoint_id}  # sampled from best.pt
    assert np.isnan(loaded.extra_columns["quality_score"]).all()  # stored as nulls without a filter
    assert loaded.meta.class_names == CLASSES
    assert loaded.meta.extra["gan_dataset_hash"] == dataset.content_hash


def test_per_class_mode(tmp_path, gan_run):
    dataset, gan = gan_run
    assert counts(generate(gan, dataset, GenerateConfig(mode="per_class", per_class=3, device="cpu"), tmp_path)) == [3, 3, 3]


@pytest.mark.parametrize(("target", "total"), [(None, 12), (15, 15)])
def test_balance_mode_yields_equal_counts(tmp_path, gan_run, target, total):
    dataset, gan = gan_run
    cfg = GenerateConfig(mode="balance", target_per_class=target, device="cpu")
    synthetic = counts(generate(gan, dataset, cfg, tmp_path))
    real = np.bincount(read_dataset(dataset).labels[read_dataset(dataset).splits == "train"], minlength=3)
    assert (real + np.array(synthetic)).tolist() == [total] * 3


def test_requested_counts_in_balance_mode():
    labels = np.repeat(np.arange(3), 4)
    assert requested_counts(labels, 3, GenerateConfig(mode="balance")).tolist() == [0, 0, 0]
    assert requested_counts(labels, 3, GenerateConfig(mode="balance", target_per_class=6)).tolist() == [2, 2, 2]


def test_nothing_to_generate_is_an_error_and_writes_nothing(tmp_path, gan_run):
    _, gan = gan_run
    balanced = write_bar_dataset(tmp_path / "in" / "dataset.parquet", train_counts=[4, 4, 4])
    with pytest.raises(ConfigError, match="nothing to generate"):
        generate(gan, balanced, GenerateConfig(mode="balance", device="cpu"), tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_same_seed_same_file_other_seed_other_images(tmp_path, gan_run):
    dataset, gan = gan_run
    first = generate(gan, dataset, GenerateConfig(seed=1, device="cpu"), tmp_path / "a")
    again = generate(gan, dataset, GenerateConfig(seed=1, device="cpu"), tmp_path / "b")
    other = generate(gan, dataset, GenerateConfig(seed=2, device="cpu"), tmp_path / "c")
    raw = generate(gan, dataset, GenerateConfig(seed=1, use_ema=False, device="cpu"), tmp_path / "d")
    assert first.content_hash == again.content_hash
    images = [read_dataset(r, SYNTHETIC_SCHEMA).images for r in (first, again, other, raw)]
    assert np.array_equal(images[0], images[1])
    assert not np.array_equal(images[0], images[2])
    assert not np.array_equal(images[0], images[3])  # the EMA generator is the default


def test_confidence_filter_keeps_confident_samples_and_stores_the_score(tmp_path, gan_run, monkeypatch):
    dataset, gan = gan_run
    # A 10-step GAN draws little that a classifier recognises as its class, so the classifier's
    # confidences are replaced by seeded uniform ones: this test is about keeping, ranking and storing.
    draws = torch.Generator().manual_seed(0)
    monkeypatch.setattr(_Scorer, "confidence", lambda self, images, labels: torch.rand(len(images), generator=draws))
    cfg = GenerateConfig(mode="per_class", per_class=4, min_confidence=0.2, rank_by="confidence",
                         filter_train=FAST_FILTER, device="cpu")
    loaded = read_dataset(generate(gan, dataset, cfg, tmp_path), SYNTHETIC_SCHEMA)
    scores = loaded.extra_columns["quality_score"]
    assert counts(loaded.path) == [4, 4, 4]
    assert (scores >= 0.2).all() and (scores <= 1.0).all()
    for label in range(3):
        class_scores = scores[loaded.labels == label]
        assert (np.diff(class_scores) <= 0).all()  # ranked best first
    assert loaded.meta.extra["quality_score"] == "confidence"


def test_discriminator_ranking_stores_scores(tmp_path, gan_run):
    dataset, gan = gan_run
    cfg = GenerateConfig(mode="per_class", per_class=3, rank_by="discriminator", oversample=3.0, device="cpu")
    loaded = read_dataset(generate(gan, dataset, cfg, tmp_path), SYNTHETIC_SCHEMA)
    scores = loaded.extra_columns["quality_score"]
    assert np.isfinite(scores).all() and loaded.meta.extra["quality_score"] == "discriminator"
    for label in range(3):
        assert (np.diff(scores[loaded.labels == label]) <= 0).all()


def test_unreachable_threshold_fails_and_writes_nothing(tmp_path, gan_run):
    dataset, gan = gan_run
    cfg = GenerateConfig(mode="per_class", per_class=2, min_confidence=1.0, max_candidates=2.0,
                         filter_train=FAST_FILTER, device="cpu")
    with pytest.raises(DataError, match=r"passed min_confidence=1.0 .* lower min_confidence"):
        generate(gan, dataset, cfg, tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_checkpoint_for_other_image_size_is_refused(tmp_path, gan_run):
    _, gan = gan_run
    other = write_bar_dataset(tmp_path / "in" / "dataset.parquet", train_counts=[4, 4, 4], size=6)
    with pytest.raises(CheckpointError, match=r"generates 1x8x8 images of 3 classes but .*dataset.parquet holds 1x6x6"):
        generate(gan, other, GenerateConfig(mode="per_class", per_class=2, device="cpu"), tmp_path / "out")
    assert files_under(tmp_path / "out") == []


def test_target_per_class_outside_balance_mode_is_a_config_error():
    with pytest.raises(ValueError, match="target_per_class only applies"):
        GenerateConfig(mode="ratio", target_per_class=5)
