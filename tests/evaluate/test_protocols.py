"""Training-set composition per protocol, no test leakage, augmentation and scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evalhelpers import CLASSES, tiny_eval_config, write_tiny_dataset, write_tiny_synthetic

from ganaug.errors import ConfigError, GanAugError
from ganaug.evaluate import protocols
from ganaug.evaluate.config import ClassicAugmentConfig
from ganaug.evaluate.data import ProtocolData, load_protocol_data
from ganaug.evaluate.protocols import (
    RunSpec,
    build_run_specs,
    check_synthetic_supply,
    classic_augment,
    compose_training_set,
    real_subset,
    score,
)


@pytest.fixture
def data(tmp_path) -> ProtocolData:
    real = write_tiny_dataset(tmp_path / "dataset.parquet", train_counts=[12, 8, 4])
    synthetic = write_tiny_synthetic(tmp_path / "synthetic.parquet", per_class=30)
    return load_protocol_data(real, synthetic)


def test_run_specs_cover_every_combination():
    cfg = tiny_eval_config(ratios=[0.5, 2.0], train_fractions=[0.25, 1.0], seeds=3)
    specs = build_run_specs(cfg)
    # per regime: real, classic, synthetic x 3 seeds + augmented x 2 ratios x 3 seeds
    assert len(specs) == 2 * (3 * 3 + 2 * 3)
    assert len(set(specs)) == len(specs)
    assert {s.ratio for s in specs if s.protocol == "augmented"} == {0.5, 2.0}
    assert {s.ratio for s in specs if s.protocol in ("real", "classic")} == {None}
    assert {s.ratio for s in specs if s.protocol == "synthetic"} == {1.0}  # synthetic_only_ratio
    assert RunSpec.model_validate_json(specs[0].model_dump_json()) == specs[0]


@pytest.mark.parametrize(
    ("protocol", "ratio", "fraction", "real_counts", "synthetic_counts"),
    [
        ("real", None, 1.0, [12, 8, 4], [0, 0, 0]),
        ("classic", None, 0.5, [6, 4, 2], [0, 0, 0]),
        ("augmented", 0.5, 1.0, [12, 8, 4], [6, 4, 2]),
        ("augmented", 2.0, 0.5, [6, 4, 2], [12, 8, 4]),
        ("synthetic", 1.0, 1.0, [0, 0, 0], [12, 8, 4]),
        ("weighted", 1.0, 1.0, [12, 8, 4], [12, 8, 4]),
        ("pretrain", 1.0, 0.5, [6, 4, 2], [6, 4, 2]),
        ("balanced", None, 1.0, [12, 8, 4], [0, 4, 8]),  # every class filled up to the largest
        ("balanced_classic", None, 0.5, [6, 4, 2], [0, 2, 4]),
        ("oversampled", None, 1.0, [12, 12, 12], [0, 0, 0]),  # real images of smaller classes repeated
        ("balanced_mixed", None, 1.0, [12, 10, 8], [0, 2, 4]),  # half of each gap synthetic, half repeated real
    ],
)
def test_training_set_composition(data, protocol, ratio, fraction, real_counts, synthetic_counts):
    spec = RunSpec(protocol=protocol, ratio=ratio, train_fraction=fraction, seed=3)
    training = compose_training_set(spec, data, tiny_eval_config())
    real = training.sources == "real"
    assert np.bincount(training.labels[real], minlength=3).tolist() == real_counts
    assert np.bincount(training.labels[~real], minlength=3).tolist() == synthetic_counts
    assert len(training.real_rows) == sum(real_counts)
    assert np.isin(training.real_rows, data.rows["train"]).all()
    assert not np.isin(training.real_rows, np.concatenate([data.rows["val"], data.rows["test"]])).any()


def test_real_subset_is_stratified_deterministic_and_shared_by_protocols(data):
    first = real_subset(data, 0.5, seed=1)
    assert np.array_equal(first, real_subset(data, 0.5, seed=1))
    assert not np.array_equal(first, real_subset(data, 0.5, seed=2))
    assert real_subset(data, 0.01, seed=0).size == 3  # at least one image of every class
    cfg = tiny_eval_config()
    rows = [compose_training_set(RunSpec(protocol=p, ratio=r, train_fraction=0.5, seed=1), data, cfg).real_rows
            for p, r in [("real", None), ("classic", None), ("augmented", 1.0)]]
    assert all(np.array_equal(rows[0], other) for other in rows[1:])


def test_a_test_row_in_the_training_rows_is_refused(data):
    rows = dict(data.rows, test=np.concatenate([data.rows["test"], data.rows["train"][:1]]))
    poisoned = ProtocolData(**{**data.__dict__, "rows": rows})
    with pytest.raises(GanAugError, match="val/test rows would be used for training"):
        compose_training_set(RunSpec(protocol="real"), poisoned, tiny_eval_config())


def test_classifier_never_sees_test_images(data, monkeypatch):
    seen = []
    from ganaug.evaluate import strategies

    real_train = strategies.train_classifier

    def spy(spec, train, val, *args, **kwargs):
        seen.append((train[0].clone(), val[0].clone()))
        return real_train(spec, train, val, *args, **kwargs)

    monkeypatch.setattr(strategies, "train_classifier", spy)
    every = ["real", "classic", "augmented", "synthetic", "weighted", "pretrain", "augmented_classic", "soft",
             "balanced", "balanced_classic", "oversampled", "balanced_mixed"]
    cfg = tiny_eval_config(protocols=every, train=tiny_eval_config().train.model_copy(update={"steps": 5}))
    for spec in build_run_specs(cfg.model_copy(update={"seeds": 1})):
        protocols.run_protocol(spec, data, cfg)
    test = protocols.images_to_tensor(data.test_images).flatten(1)
    val = protocols.images_to_tensor(data.val_images)
    assert len(seen) == len(every) + 2  # pretrain and soft train twice (pre-training; the teacher)
    for train_images, val_images in seen:
        assert torch.equal(val_images, val)  # early stopping on the val split only
        matches = (train_images.flatten(1)[:, None, :] == test[None, :, :]).all(-1)
        assert not matches.any()


def test_not_enough_synthetic_images_fails_before_training(tmp_path):
    real = write_tiny_dataset(tmp_path / "dataset.parquet")
    synthetic = write_tiny_synthetic(tmp_path / "synthetic.parquet", per_class=5)
    data = load_protocol_data(real, synthetic)
    cfg = tiny_eval_config(ratios=[1.0])
    with pytest.raises(ConfigError, match=r"needs 12 synthetic images of class 'a' but synthetic.parquet has 5"):
        check_synthetic_supply(data, build_run_specs(cfg), cfg)


def test_classic_augment_is_seeded_and_zero_strength_is_identity():
    images = torch.rand(6, 1, 8, 8) * 2 - 1
    augment = classic_augment(ClassicAugmentConfig())
    first = augment(images, torch.Generator().manual_seed(0))
    assert first.shape == images.shape
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.allclose(first, images)
    identity = classic_augment(ClassicAugmentConfig(max_shift=0, max_rotation=0, max_scale=0))
    assert torch.allclose(identity(images, torch.Generator().manual_seed(0)), images, atol=1e-6)


def test_elastic_distortion_is_seeded_bounded_and_smooth():
    from ganaug.evaluate.protocols import elastic_field

    field = elastic_field(torch.Size((4, 1, 28, 28)), 2.0, 3.0, torch.Generator().manual_seed(0))
    assert field.shape == (4, 28, 28, 2)
    pixels = field * torch.tensor([14.0, 14.0])  # grid units -> pixels (28 px span 2 units)
    assert pixels.abs().amax().item() == pytest.approx(2.0, rel=1e-4)
    assert (pixels[:, 1:] - pixels[:, :-1]).abs().amax() < 1.0  # unsmoothed noise would differ by up to 4
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    augment = classic_augment(ClassicAugmentConfig(max_shift=0, max_rotation=0, max_scale=0, elastic_alpha=2.0))
    once = augment(images, torch.Generator().manual_seed(1))
    assert torch.equal(once, augment(images, torch.Generator().manual_seed(1))) and not torch.allclose(once, images)


def test_score_matches_hand_computation():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    result = score(predicted, labels, len(CLASSES))
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["per_class_recall"] == pytest.approx([0.5, 1.0, 0.5])
    # F1 per class: 0 -> 2*1/(2+2)=0.5, 1 -> 2*2/(2+3)=0.8, 2 -> 2*1/(2+1)=2/3
    assert result["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_score_averages_over_present_classes_and_counts_unpredicted_ones_as_zero():
    labels = np.array([0, 0, 0, 1])  # class 2 absent from the split; class 1 never predicted
    predicted = np.array([0, 0, 2, 0])
    result = score(predicted, labels, 3)
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["per_class_recall"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 0.0) / 2)
    # F1 of class 0: 2*2 / (3 + 3) = 2/3; class 1: 0; class 2 left out of the mean (no true images)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
