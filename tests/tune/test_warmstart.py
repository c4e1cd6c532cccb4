"""Nearest past datasets by meta-features, their best configs, and the search space's mapping to GanConfig."""

from __future__ import annotations

import dataclasses

import optuna
import pytest

from ganaug.gan import GanConfig
from ganaug.tune.config import CHOICES, from_gan_config, suggest, to_gan_config
from ganaug.tune.history import DatasetFeatures, make_record
from ganaug.tune.warmstart import distances, nearest_datasets, warm_order

DIGITS_LIKE = DatasetFeatures("small8", "digits10.parquet", 120, 10, 8, 8, 1, (12,) * 10, 0.30, 0.38, (0.2,) * 16 + (0.3,) * 16)


def variant(name: str, **changes: object) -> DatasetFeatures:
    return dataclasses.replace(DIGITS_LIKE, dataset_hash=name, dataset_path=f"{name}.parquet", **changes)


def record(features: DatasetFeatures, cfg: GanConfig, cas_val: float | None = None, val_nn_cas: float | None = None,
           pruned: bool = False, collapsed: float | None = None) -> dict[str, object]:
    reading = {"val_nn_cas": val_nn_cas if val_nn_cas is not None else 0.1, "collapsed_classes": collapsed}
    rows = [{"step": 10, "d_loss": 1.0, "g_loss": 1.0, **reading}] if val_nn_cas is not None or collapsed is not None else []
    return make_record(features, cfg, rows, origin="tune" if cas_val is not None else "train", steps=10, seconds=1.0,
                       device="cpu", cas_val=cas_val, pruned=pruned)


def test_nearest_dataset_is_the_one_alike_in_size_shape_and_pixels() -> None:
    larger = variant("digits100", images=1200, class_counts=(120,) * 10)
    mnist = variant("mnist", images=1000, height=28, width=28, class_counts=(100,) * 10, pixel_mean=0.13, pixel_std=0.31,
                    embedding=(0.05,) * 16 + (0.2,) * 16)
    rgb = variant("rgb", images=500, classes=5, height=32, width=32, channels=3, class_counts=(100,) * 5,
                  pixel_mean=0.45, pixel_std=0.25, embedding=(0.45,) * 16 + (0.25,) * 16)
    query = variant("query", images=150, class_counts=(15,) * 10, pixel_mean=0.31)
    found = distances(query, [rgb, mnist, larger, DIGITS_LIKE])
    assert sorted(range(4), key=found.__getitem__) == [3, 2, 1, 0]  # digits 10%, digits 100%, MNIST, RGB
    assert distances(DIGITS_LIKE, [DIGITS_LIKE, rgb])[0] == 0.0
    rows = [record(f, GanConfig(seed=i), cas_val=0.5) for i, f in enumerate([rgb, mnist, larger, DIGITS_LIKE])]
    neighbours = nearest_datasets(query, rows, k=2, per_dataset=1)
    assert [n.features.dataset_hash for n in neighbours] == ["small8", "digits100"]
    assert [n.configs[0].seed for n in neighbours] == [3, 2]


def test_best_configs_of_a_dataset_rank_tuned_utility_first_and_skip_pruned_and_duplicates() -> None:
    rows = [
        record(DIGITS_LIKE, GanConfig(g_lr=1e-4), cas_val=0.5),
        record(DIGITS_LIKE, GanConfig(g_lr=2e-4), cas_val=0.9),
        record(DIGITS_LIKE, GanConfig(g_lr=3e-4), cas_val=0.99, pruned=True),
        record(DIGITS_LIKE, GanConfig(g_lr=4e-4), val_nn_cas=0.95),  # a plain training: 1-NN CAS, another scale
        record(DIGITS_LIKE, GanConfig(g_lr=2e-4), cas_val=0.7),  # the same config again
        record(DIGITS_LIKE, GanConfig(g_lr=5e-4)),  # no val reading at all
    ]
    [neighbour] = nearest_datasets(DIGITS_LIKE, rows, k=3, per_dataset=5)
    assert [c.g_lr for c in neighbour.configs] == [2e-4, 1e-4, 4e-4]
    assert neighbour.utilities == (0.9, 0.5, 0.95)
    assert nearest_datasets(DIGITS_LIKE, [], k=3, per_dataset=1) == []


def test_a_config_whose_samples_collapsed_ranks_by_the_classes_it_kept() -> None:
    rows = [
        record(DIGITS_LIKE, GanConfig(g_lr=1e-4), cas_val=0.6, collapsed=10.0),  # one prototype per class: utility 0
        record(DIGITS_LIKE, GanConfig(g_lr=2e-4), cas_val=0.5, collapsed=0.0),
        record(DIGITS_LIKE, GanConfig(g_lr=3e-4), cas_val=0.8, collapsed=5.0),  # half the classes collapsed: 0.4
        record(DIGITS_LIKE, GanConfig(g_lr=4e-4), cas_val=0.45),  # an older record without the reading counts whole
    ]
    [neighbour] = nearest_datasets(DIGITS_LIKE, rows, k=1, per_dataset=4)
    assert [c.g_lr for c in neighbour.configs] == [2e-4, 4e-4, 3e-4, 1e-4]
    assert neighbour.utilities == pytest.approx((0.5, 0.45, 0.4, 0.0))


def test_space_points_survive_the_round_trip_through_gan_config() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    base = GanConfig(device="cpu", batch_size=16)
    for _ in range(25):
        trial = study.ask()
        params = suggest(trial)
        cfg = to_gan_config(params, base, steps=123)
        assert (cfg.steps, cfg.batch_size, cfg.device) == (123, 16, "cpu")
        assert from_gan_config(cfg, 8, 8) == pytest.approx(params)
        study.tell(trial, 0.0)


def test_a_past_config_outside_the_space_snaps_to_the_nearest_point() -> None:
    cfg = GanConfig(g_lr=0.5, d_lr=1e-6, g_width=24, d_width=None, diffaugment=["cutout"], ema_decay=0.9,
                    mode_seeking=None, loss="wgan-gp", lr_schedule="cosine", betas=(0.2, 0.95))
    params = from_gan_config(cfg, 28, 28)
    assert params["g_lr"] == 2e-3 and params["d_lr"] == 1e-4
    assert params["g_width"] == 16 and params["d_width"] == 32  # a tie goes to the smaller; None = the size's default
    assert params["diffaugment"] == "translation,cutout" and params["ema_decay"] == 0.99 and params["mode_seeking"] == 0.0
    assert (params["loss"], params["lr_schedule"], params["beta1"], params["beta2"]) == ("hinge", "constant", 0.0, 0.99)
    assert "lr_decay_rate" not in params
    assert set(params) == set(CHOICES) | {"g_lr", "d_lr"}


def test_among_one_kind_of_data_at_several_sizes_the_closest_size_is_nearest() -> None:
    """Digits at 10/30/50/100%: third-decimal pixel-statistic differences must not outweigh size."""
    regimes = {"d10": (105, 0.307), "d30": (315, 0.305), "d100": (1050, 0.305)}
    candidates = [variant(name, images=n, pixel_mean=mean) for name, (n, mean) in regimes.items()]
    query = variant("d50", images=525, pixel_mean=0.307)
    found = distances(query, candidates)
    assert sorted(regimes, key=lambda name: found[list(regimes).index(name)]) == ["d30", "d100", "d10"]


def test_every_nearest_dataset_gives_its_best_config_before_any_gives_its_second() -> None:
    near, far = variant("near"), variant("far", images=1200, class_counts=(120,) * 10)
    rows = [record(near, GanConfig(g_lr=lr), cas_val=cas) for lr, cas in ((1e-4, 0.3), (2e-4, 0.25), (3e-4, 0.2))]
    rows += [record(far, GanConfig(g_lr=lr), cas_val=cas) for lr, cas in ((5e-4, 0.9), (6e-4, 0.2))]
    neighbours = nearest_datasets(DIGITS_LIKE, rows, k=2, per_dataset=3)
    assert [n.features.dataset_hash for n in neighbours] == ["near", "far"]
    order = warm_order(neighbours)
    assert [(n.features.dataset_hash, c.g_lr) for n, c in order] == [
        ("near", 1e-4), ("far", 5e-4), ("near", 2e-4), ("far", 6e-4), ("near", 3e-4)]
    assert warm_order([]) == []
