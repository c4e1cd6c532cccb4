"""The collapse monitor: its metrics on known inputs, and its readings during training."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_digits

from ganaug.errors import DataError
from ganaug.gan import GanConfig, train_gan
from ganaug.gan.artifacts import MONITOR_COLUMNS
from ganaug.gan.monitor import (
    CollapseMonitor,
    MonitorReading,
    frechet_distance,
    knn_recall,
    nearest_neighbour_accuracy,
    reading_summary,
    within_class_spread,
)
from ganaug.store import DatasetRef


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) in [-1, 1] and labels, shuffled with a fixed seed."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    return images[order], torch.tensor(data.target)[order]


def halves() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    images, labels = digits()
    half = len(images) // 2
    return (images[:half], labels[:half]), (images[half:], labels[half:])


def test_one_image_per_class_plus_noise_reads_as_collapsed() -> None:
    (real, real_labels), (other, other_labels) = halves()
    monitor = CollapseMonitor(real, real_labels, 10, per_class=50, collapse_spread=0.3, seed=0)
    firsts = torch.stack([other[other_labels == c][0] for c in range(10)])  # (10, 1, 8, 8)
    labels = torch.arange(10).repeat_interleave(50)
    collapsed = firsts[labels] + 0.01 * torch.randn(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(1))
    reading = monitor.compare(collapsed, labels)
    assert float(reading.spread.max()) < 0.1
    assert float(reading.recall.max()) < 0.2
    assert reading.collapsed == list(range(10)) and reading.row()["collapsed_classes"] == 10.0


def test_two_halves_of_real_data_read_as_healthy() -> None:
    (real, real_labels), (other, other_labels) = halves()
    monitor = CollapseMonitor(real, real_labels, 10, per_class=50, collapse_spread=0.3, seed=0)
    pick = torch.cat([torch.nonzero(other_labels == c).flatten()[:50] for c in range(10)])
    reading = monitor.compare(other[pick], other_labels[pick])
    row = reading.row()
    assert 0.85 < row["spread"] < 1.15 and row["min_class_spread"] > 0.7
    assert row["recall"] > 0.8 and reading.collapsed == [] and row["val_nn_cas"] > 0.9
    collapsed = monitor.compare(other[pick][:: 50].repeat_interleave(50, 0), other_labels[pick])
    assert collapsed.row()["val_frechet"] > 5 * row["val_frechet"]


def test_metric_functions_on_values_computed_by_hand() -> None:
    images = torch.tensor([[0.0, 0.0], [2.0, 4.0], [5.0, 5.0], [5.0, 5.0]]).view(4, 1, 1, 2)
    spread = within_class_spread(images, torch.tensor([0, 0, 1, 1]), 3)
    # class 0: std of (0, 2) and (0, 4) with Bessel's correction = sqrt(2), sqrt(8); class 1: 0; class 2: no images.
    assert spread[0].item() == pytest.approx((math.sqrt(2) + math.sqrt(8)) / 2) and spread[1].item() == 0.0
    assert math.isnan(spread[2].item())
    fake = torch.tensor([[0.0], [1.0], [10.0], [11.0]])  # k=1 radius of every fake point: 1
    assert knn_recall(torch.tensor([[0.5], [5.0], [10.9], [20.0]]), fake, k=1) == 0.5
    a = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
    a = a - a.mean(dim=0)  # zero mean: scaling changes only the covariance
    # 1-NN: the train points 0 (class 0) and 10 (class 1); 4 -> 0 right, 6 -> 1 wrong, 9 -> 1 right.
    accuracy = nearest_neighbour_accuracy(torch.tensor([[0.0], [10.0]]), torch.tensor([0, 1]),
                                          torch.tensor([[4.0], [6.0], [9.0]]), torch.tensor([0, 0, 1]))
    assert accuracy == pytest.approx(2 / 3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(a, a + torch.tensor([3.0, 0.0, 0.0])) == pytest.approx(9.0, rel=1e-6)
    assert frechet_distance(a, 2 * a) == pytest.approx(torch.cov(a.T).trace().item(), rel=1e-6)  # tr(S + 4S - 2*2S)
    with pytest.raises(DataError, match="recall with k=3 needs more than 3 generated"):
        knn_recall(a, a[:3], k=3)


def test_monitor_needs_val_images() -> None:
    images, labels = digits()
    with pytest.raises(DataError, match="needs real val images.*monitor_every=None"):
        CollapseMonitor(images[:0], labels[:0], 10, per_class=10, collapse_spread=0.3, seed=0)


def test_training_records_monitor_readings(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    cfg = tiny_cfg.model_copy(update={"monitor_every": 3, "metrics_every": 2})
    result = train_gan(tiny_dataset, cfg, tmp_path, callbacks=lambda step, metrics: seen.append(metrics))
    table = pq.read_table(result.metrics_path).to_pydict()
    assert table["step"] == [2, 3, 4, 6]  # metrics every 2 steps plus the monitor's steps
    measured = [step for step, spread in zip(table["step"], table["spread"]) if not math.isnan(spread)]
    assert measured == [3, 6]
    for column in MONITOR_COLUMNS:
        assert all(math.isnan(v) for s, v in zip(table["step"], table[column]) if s not in (3, 6))
    assert 0.0 <= table["recall"][1] <= 1.0 and table["val_frechet"][1] >= 0.0 and 0.0 <= table["val_nn_cas"][1] <= 1.0
    assert [m["step"] for m in seen if "collapsed" in m] == [3, 6]
    assert reading_summary(seen[1]).startswith("spread ") and reading_summary(seen[0]) == ""


def test_a_collapsed_class_is_warned_about(tiny_dataset: DatasetRef, tiny_cfg: GanConfig, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def measure(self: CollapseMonitor, generator: torch.nn.Module) -> MonitorReading:
        spread = torch.tensor([0.8, 0.05, 0.9])  # class c1 collapsed
        return MonitorReading(spread, torch.tensor([0.7, 0.0, 0.6]), torch.ones(3), self.collapse_spread)

    monkeypatch.setattr(CollapseMonitor, "measure", measure)
    seen: list[dict[str, Any]] = []
    with caplog.at_level(logging.WARNING, logger="ganaug.gan.stage"):
        train_gan(tiny_dataset, tiny_cfg, tmp_path, callbacks=lambda step, metrics: seen.append(metrics))
    final = seen[-1]
    assert final["collapsed"] == ["c1"] and final["collapsed_classes"] == 1.0
    assert final["min_class_spread"] == pytest.approx(0.05) and final["min_class_recall"] == 0.0
    assert "class(es) c1 collapsed" in caplog.text
    assert "COLLAPSED: c1" in reading_summary(final)


@pytest.mark.slow
def test_default_widths_at_28x28_keep_the_ema_generator_diverse(tmp_path: Path) -> None:
    """200 steps of the defaults on 28x28 digits: the EMA generator's spread stays >= 0.4 x real and its recall high."""
    import numpy as np
    from PIL import Image

    from ganaug.store import DatasetMeta, write_dataset

    data = load_digits()
    # 28x28 images: the 8x8 digits enlarged (bilinear), 150 train and 30 val images per class.
    big = np.stack([np.asarray(Image.fromarray((img * 255 / 16).astype(np.uint8)).resize((28, 28), Image.BILINEAR))
                    for img in data.images])[:, None]
    splits = np.array(["train"] * len(big), dtype=object)
    for label in range(10):
        members = np.flatnonzero(data.target == label)
        splits[members[150:]] = "val"
    meta = DatasetMeta(height=28, width=28, channels=1, class_names=[str(i) for i in range(10)], ingestion_source="tests")
    dataset = write_dataset(tmp_path / "dataset.parquet", big, data.target, splits.astype(str), meta)
    cfg = GanConfig(steps=200, monitor_every=100, checkpoint_every=None, grid_every=None, device="cpu", seed=0)
    result = train_gan(dataset, cfg, tmp_path / "run")
    table = pq.read_table(result.metrics_path).to_pydict()
    assert table["step"][-1] == 200 and table["spread"][-1] >= 0.4, table["spread"]
    # On these enlarged digits the collapsing configurations still keep spread ~0.6 at step 200, but
    # their recall is already low (0.16 for the networks with copied EMA statistics, 0.51 for
    # the wider G without mode seeking; the defaults: 0.95), so recall is what this test pins.
    assert table["recall"][-1] >= 0.7, table["recall"]


def test_frechet_distance_with_fewer_samples_than_features_matches_the_symmetric_root_formula() -> None:
    # the monitor's regime: 96 features, a few dozen images per class, singular covariances
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.rand(20, 96, generator=generator).double(), torch.rand(30, 96, generator=generator).double() + 0.05
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    values, vectors = torch.linalg.eigh(cov_r)
    root_r = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    # tr((S_r S_f)^1/2) = sum of sqrt(eigenvalues of S_r^1/2 S_f S_r^1/2), a symmetric PSD matrix
    middle = torch.linalg.eigvalsh(root_r @ cov_f @ root_r).clamp_min(0).sqrt().sum()
    expected = (real.mean(0) - fake.mean(0)).pow(2).sum() + cov_r.trace() + cov_f.trace() - 2 * middle
    assert frechet_distance(real, fake) == pytest.approx(float(expected), rel=1e-6)
